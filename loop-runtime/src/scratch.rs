//! Places for agent calls that must not run in the person's checkout: an empty directory (the
//! naming call needs only its prompt) or a detached worktree of the run's branch (the
//! postmortem's analyses read the spec and plan as the run left them), under the data dir and
//! removed afterwards.

use std::path::{Path, PathBuf};

use crate::git;

/// A scratch directory, removed with [`Scratch::remove`].
#[derive(Debug)]
pub(crate) struct Scratch {
    path: PathBuf,
    /// The repository whose worktree it is, if it is one.
    repo: Option<PathBuf>,
}

impl Scratch {
    /// An empty directory `<data_dir>/scratch/<name>`.
    pub(crate) fn empty(data_dir: &Path, name: &str) -> std::io::Result<Scratch> {
        let path = data_dir.join("scratch").join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Scratch { path, repo: None })
    }

    /// A detached worktree of `repo` at `rev` in `<data_dir>/scratch/<name>`; an empty
    /// directory when git cannot make one (no repository, no such revision).
    pub(crate) async fn checkout(
        data_dir: &Path,
        name: &str,
        repo: &Path,
        rev: &str,
    ) -> std::io::Result<Scratch> {
        let path = data_dir.join("scratch").join(name);
        let text = path.to_string_lossy().into_owned();
        let _ = git::run(repo, &["worktree", "remove", "--force", &text]).await;
        let _ = std::fs::remove_dir_all(&path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match git::run(repo, &["worktree", "add", "--detach", &text, rev]).await {
            Ok(_) => Ok(Scratch {
                path,
                repo: Some(repo.to_owned()),
            }),
            Err(error) => {
                tracing::warn!(%error, "no scratch worktree; the calls run in an empty directory");
                Scratch::empty(data_dir, name)
            }
        }
    }

    /// A detached worktree of `repo` at `rev` in `<data_dir>/scratch/<name>`, or why git could
    /// not make one: an experiment measures a commit there and nowhere else.
    pub(crate) async fn detached(
        data_dir: &Path,
        name: &str,
        repo: &Path,
        rev: &str,
    ) -> Result<Scratch, String> {
        let path = data_dir.join("scratch").join(name);
        let text = path.to_string_lossy().into_owned();
        let _ = git::run(repo, &["worktree", "remove", "--force", &text]).await;
        let _ = std::fs::remove_dir_all(&path);
        let _ = git::run(repo, &["worktree", "prune"]).await;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| error.to_string())?;
        }
        git::run(repo, &["worktree", "add", "--detach", &text, rev])
            .await
            .map_err(|error| error.to_string())?;
        Ok(Scratch {
            path,
            repo: Some(repo.to_owned()),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn remove(self) {
        if let Some(repo) = &self.repo {
            let text = self.path.to_string_lossy().into_owned();
            let _ = git::run(repo, &["worktree", "remove", "--force", &text]).await;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
