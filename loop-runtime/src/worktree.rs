//! Where a run works. A provider prepares the run's working tree; the git and Worktrunk
//! providers plug in here. [`InPlace`] runs in the workspace itself (`--no-worktree`).

use std::path::{Path, PathBuf};

use loop_core::RunId;
use loop_core::config::RunConfig;
use loop_core::event::Provider;

use crate::agent::BoxFuture;

mod git;
mod worktrunk;

pub use git::GitWorktrees;
pub(crate) use git::{absolute, worktree_path};
pub use worktrunk::Worktrunk;

/// A run's working tree, once prepared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    pub provider: Provider,
    pub path: PathBuf,
    pub base_branch: String,
    pub run_branch: String,
    pub reused: bool,
}

/// Why a working tree could not be prepared or removed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WorktreeError(pub String);

/// Prepares and removes run working trees.
pub trait WorktreeProvider: Send + Sync + std::fmt::Debug {
    /// The provider's name, as recorded in `WORKTREE_PROVIDER_SELECTED`.
    fn name(&self) -> Provider;
    fn prepare<'a>(
        &'a self,
        workspace_root: &'a Path,
        run_id: RunId,
        run_name: &'a str,
        config: &'a RunConfig,
    ) -> BoxFuture<'a, Result<Workspace, WorktreeError>>;
    /// Removes the worktree; `config` is the run's frozen configuration.
    fn remove<'a>(
        &'a self,
        workspace: &'a Workspace,
        config: &'a RunConfig,
    ) -> BoxFuture<'a, Result<(), WorktreeError>>;
    /// Whether the provider can work here (`auto` asks Worktrunk before falling back to git).
    fn available<'a>(&'a self, _config: &'a RunConfig) -> BoxFuture<'a, bool> {
        Box::pin(async { true })
    }
}

/// Works in the workspace itself: nothing to create, nothing to remove.
#[derive(Clone, Copy, Debug, Default)]
pub struct InPlace;

impl WorktreeProvider for InPlace {
    fn name(&self) -> Provider {
        Provider::InPlace
    }

    fn prepare<'a>(
        &'a self,
        workspace_root: &'a Path,
        _run_id: RunId,
        _run_name: &'a str,
        _config: &'a RunConfig,
    ) -> BoxFuture<'a, Result<Workspace, WorktreeError>> {
        Box::pin(async move {
            let branch = crate::git::current_branch(workspace_root)
                .await
                .unwrap_or_default();
            Ok(Workspace {
                provider: self.name(),
                path: workspace_root.to_owned(),
                base_branch: branch.clone(),
                run_branch: branch,
                reused: true,
            })
        })
    }

    fn remove<'a>(
        &'a self,
        _workspace: &'a Workspace,
        _config: &'a RunConfig,
    ) -> BoxFuture<'a, Result<(), WorktreeError>> {
        Box::pin(async { Ok(()) })
    }
}
