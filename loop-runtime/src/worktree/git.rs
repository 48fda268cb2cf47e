//! `worktree_provider=git`: a branch and a worktree per run, made with plain git.
//!
//! The run branch is `run_branch_prefix` + the run name's slug, with `-2`, `-3`, … when taken by
//! a branch or a worktree. The branch remembers its run (`git config branch.<b>.loop-run`), so a
//! run restarted before its worktree was recorded finds its own branch again instead of taking a
//! new one. A directory at the computed path is reused only when it is a worktree on the run's
//! branch; anything else there is an error and is left alone.

use std::path::{Component, Path, PathBuf};

use loop_core::RunId;
use loop_core::config::RunConfig;
use loop_core::event::Provider;
use loop_core::worktree_path;

use crate::agent::BoxFuture;
use crate::git;
use crate::request::slug;
use crate::worktree::{Workspace, WorktreeError, WorktreeProvider};

#[derive(Clone, Copy, Debug, Default)]
pub struct GitWorktrees;

impl WorktreeProvider for GitWorktrees {
    fn name(&self) -> Provider {
        Provider::Git
    }

    fn prepare<'a>(
        &'a self,
        workspace_root: &'a Path,
        run_id: RunId,
        run_name: &'a str,
        config: &'a RunConfig,
    ) -> BoxFuture<'a, Result<Workspace, WorktreeError>> {
        Box::pin(prepare(workspace_root, run_id, run_name, config))
    }

    fn remove<'a>(
        &'a self,
        workspace: &'a Workspace,
        _config: &'a RunConfig,
    ) -> BoxFuture<'a, Result<(), WorktreeError>> {
        Box::pin(async move {
            let path = workspace.path.to_string_lossy();
            if !workspace.path.exists() {
                return Ok(());
            }
            let repo = git::run(&workspace.path, &["rev-parse", "--git-common-dir"])
                .await
                .map_err(|e| WorktreeError(e.to_string()))?;
            let repo = absolute(&workspace.path, Path::new(&repo));
            git::run(&repo, &["worktree", "remove", "--force", &path])
                .await
                .map_err(|e| WorktreeError(e.to_string()))?;
            Ok(())
        })
    }
}

fn err(error: git::GitError) -> WorktreeError {
    WorktreeError(error.to_string())
}

async fn prepare(
    workspace_root: &Path,
    run_id: RunId,
    run_name: &str,
    config: &RunConfig,
) -> Result<Workspace, WorktreeError> {
    let (root, base, branch) = run_branch(workspace_root, run_id, run_name, config).await?;
    let path = worktree_path(&root, &branch, config)?;

    let existing = git::worktrees(&root).await.map_err(err)?;
    let at_path = existing.iter().find(|w| Path::new(&w.path) == path);
    let reused = match (at_path, path.exists()) {
        (Some(worktree), _) if worktree.branch.as_deref() == Some(&branch) => true,
        (Some(worktree), _) => {
            return Err(WorktreeError(format!(
                "{} is a worktree on {}, not on the run's branch {branch}; it was left alone",
                path.display(),
                worktree.branch.as_deref().unwrap_or("a detached HEAD")
            )));
        }
        (None, true) => {
            return Err(WorktreeError(format!(
                "{} already exists and is not this run's worktree; it was left alone \
                 (remove it, or change worktree_path_template)",
                path.display()
            )));
        }
        (None, false) => false,
    };
    if !reused {
        let path_text = path.to_string_lossy();
        if git::branch_commit(&root, &branch).await.is_some() {
            git::run(&root, &["worktree", "add", &path_text, &branch])
                .await
                .map_err(err)?;
        } else {
            git::run(
                &root,
                &["worktree", "add", "-b", &branch, &path_text, &base],
            )
            .await
            .map_err(err)?;
        }
        git::set_branch_owner(&root, &branch, &run_id.to_string())
            .await
            .map_err(err)?;
        copy_included(&root, &path).await?;
    }
    Ok(Workspace {
        provider: Provider::Git,
        path,
        base_branch: base,
        run_branch: branch,
        reused,
    })
}

/// Where the worktree of `branch` goes: `worktree_path_template` rendered for the repository at
/// `root`.
pub(crate) fn worktree_path(
    root: &Path,
    branch: &str,
    config: &RunConfig,
) -> Result<PathBuf, WorktreeError> {
    let repo_name = root
        .file_name()
        .map_or_else(|| "repo".to_owned(), |n| n.to_string_lossy().into_owned());
    let rendered = worktree_path::render(&config.worktree_path_template, &repo_name, branch)
        .map_err(|e| WorktreeError(e.to_string()))?;
    Ok(absolute(root, Path::new(&rendered)))
}

/// The repository root, the base branch and the run's branch: the branch an earlier attempt of
/// this run made, else `run_branch_prefix` + the name's slug, made unique.
pub(crate) async fn run_branch(
    workspace_root: &Path,
    run_id: RunId,
    run_name: &str,
    config: &RunConfig,
) -> Result<(PathBuf, String, String), WorktreeError> {
    let root = git::run(workspace_root, &["rev-parse", "--show-toplevel"])
        .await
        .map_err(|_| {
            WorktreeError(format!(
                "{} is not in a git repository: use --no-worktree to work in it directly",
                workspace_root.display()
            ))
        })?;
    let root = PathBuf::from(root);
    let base = base_branch(&root, config).await?;
    let branch = match git::owned_branch(&root, &run_id.to_string()).await {
        Some(branch) => branch,
        None => {
            free_branch(
                &root,
                &format!("{}{}", config.run_branch_prefix, slug(run_name)),
            )
            .await?
        }
    };
    Ok((root, base, branch))
}

/// `base_branch`, else the workspace's branch, else the remote's HEAD, `main`, `master`.
pub(crate) async fn base_branch(root: &Path, config: &RunConfig) -> Result<String, WorktreeError> {
    if let Some(base) = &config.base_branch {
        return Ok(base.clone());
    }
    if let Some(branch) = git::current_branch(root).await {
        return Ok(branch);
    }
    if let Ok(remote_head) = git::run(
        root,
        &["symbolic-ref", "--short", "refs/remotes/origin/HEAD"],
    )
    .await
        && let Some(branch) = remote_head.strip_prefix("origin/")
    {
        return Ok(branch.to_owned());
    }
    for candidate in ["main", "master"] {
        if git::branch_commit(root, candidate).await.is_some() {
            return Ok(candidate.to_owned());
        }
    }
    Err(WorktreeError(format!(
        "cannot tell which branch to start from in {}: set base_branch",
        root.display()
    )))
}

/// `wanted`, or `wanted-2`, `wanted-3`, … whichever no branch or worktree has, here or on
/// `origin` as last fetched (where runs by URL that other nodes started push theirs).
pub(crate) async fn free_branch(root: &Path, wanted: &str) -> Result<String, WorktreeError> {
    let branches = git::run(
        root,
        &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
    )
    .await
    .map_err(err)?;
    let pushed = git::run(
        root,
        &[
            "for-each-ref",
            "--format=%(refname:lstrip=3)",
            "refs/remotes/origin",
        ],
    )
    .await
    .map_err(err)?;
    let taken: Vec<String> = branches
        .lines()
        .chain(pushed.lines().filter(|b| *b != "HEAD"))
        .map(str::to_owned)
        .chain(
            git::worktrees(root)
                .await
                .map_err(err)?
                .into_iter()
                .filter_map(|w| w.branch),
        )
        .collect();
    let mut candidate = wanted.to_owned();
    let mut n = 1;
    while taken.contains(&candidate) {
        n += 1;
        candidate = format!("{wanted}-{n}");
    }
    Ok(candidate)
}

/// Copies the untracked files `.worktreeinclude` names (gitignore syntax) into the worktree:
/// the `.env` files and local settings an agent needs that git does not carry.
async fn copy_included(root: &Path, worktree: &Path) -> Result<(), WorktreeError> {
    let include = root.join(".worktreeinclude");
    if !include.is_file() {
        return Ok(());
    }
    let include = include.to_string_lossy();
    let files = git::run(
        root,
        &[
            "ls-files",
            "--others",
            "--ignored",
            "-z",
            &format!("--exclude-from={include}"),
        ],
    )
    .await
    .map_err(err)?;
    for file in files.split('\0').filter(|f| !f.is_empty()) {
        let target = worktree.join(file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| WorktreeError(format!("{}: {e}", parent.display())))?;
        }
        std::fs::copy(root.join(file), &target)
            .map_err(|e| WorktreeError(format!("copy {file} into the worktree: {e}")))?;
    }
    Ok(())
}

/// `path` against `base`, with `.` and `..` resolved lexically.
pub(crate) fn absolute(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
