//! Run worktrees left on disk: listed with their size, collected once their run is over,
//! removed one by one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use loop_core::projection::RunView;
use loop_core::{RunId, RunStatus};
use loop_store::RunQuery;

use super::{GcFailure, GcReport, RunWorktree, invalid, live_worktree};
use crate::error::RuntimeError;
use crate::services::Services;

/// The worktrees runs still have (created and not removed, by the log), of one workspace
/// or of all, newest run first, each with its size on disk.
pub(crate) async fn worktrees(
    services: &Services,
    workspace: Option<&Path>,
) -> Result<Vec<RunWorktree>, RuntimeError> {
    let views = runs_with_worktrees(services, workspace).await?;
    measure_all(views).await
}

/// Removes the worktrees of finished runs (COMPLETED, FAILED, CANCELED) of one workspace or
/// of all, whose run last changed at least `older_than` ago (all of them when `None`), and
/// records `WORKTREE_REMOVED` for each. Run branches are kept. A dry run changes nothing
/// and reports the same list.
pub(crate) async fn gc(
    services: &Services,
    workspace: Option<&Path>,
    dry_run: bool,
    older_than: Option<Duration>,
) -> Result<GcReport, RuntimeError> {
    let cutoff = older_than.map(|age| {
        services
            .clock
            .now_ms()
            .saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
    });
    let views: Vec<RunView> = runs_with_worktrees(services, workspace)
        .await?
        .into_iter()
        .filter(|view| view.status.is_terminal())
        .filter(|view| cutoff.is_none_or(|cutoff| view.updated_ms <= cutoff))
        .collect();
    let candidates = measure_all(views).await?;
    let mut report = GcReport {
        dry_run,
        removed: Vec::new(),
        bytes_freed: 0,
        failed: Vec::new(),
    };
    for worktree in candidates {
        if !dry_run {
            // Folded afresh: a run retried since the listing is no longer finished.
            let state = services.journal.state(worktree.run_id).await?;
            if !state.status().is_some_and(RunStatus::is_terminal) {
                continue;
            }
            if let Err(error) = remove_recorded(services, worktree.run_id).await {
                report.failed.push(GcFailure {
                    run_id: worktree.run_id,
                    path: worktree.path.clone(),
                    error: error.to_string(),
                });
                continue;
            }
        }
        report.bytes_freed += worktree.bytes;
        report.removed.push(worktree);
    }
    Ok(report)
}

/// Removes the run worktree at `path` and records `WORKTREE_REMOVED`. Only a worktree the
/// log records for a run (and not yet removed) is touched; one whose run is RUNNING or
/// PAUSED is refused unless `force`.
pub(crate) async fn remove_worktree(
    services: &Services,
    path: &Path,
    force: bool,
) -> Result<RunWorktree, RuntimeError> {
    let wanted = normalized(path);
    let view = runs_with_worktrees(services, None)
        .await?
        .into_iter()
        .find(|view| {
            live_worktree(view)
                .is_some_and(|(recorded, _)| normalized(Path::new(&recorded)) == wanted)
        })
        .ok_or_else(|| {
            invalid(
                path.display().to_string(),
                "not the worktree of any run (see `loopctl worktrees`); it was left alone",
            )
        })?;
    if !force && matches!(view.status, RunStatus::Running | RunStatus::Paused) {
        return Err(invalid(
            path.display().to_string(),
            format!(
                "run {} ({}) is {} and works there: cancel it first, or force the removal",
                view.id, view.name, view.status
            ),
        ));
    }
    let mut measured = measure_all(vec![view]).await?;
    let worktree = measured.pop().ok_or_else(|| {
        invalid(
            path.display().to_string(),
            "the worktree could not be measured",
        )
    })?;
    remove_recorded(services, worktree.run_id).await?;
    Ok(worktree)
}

/// Runs whose log records a worktree not yet removed, newest first.
async fn runs_with_worktrees(
    services: &Services,
    workspace: Option<&Path>,
) -> Result<Vec<RunView>, RuntimeError> {
    let query = RunQuery {
        workspace_root: workspace.map(|w| w.to_string_lossy().into_owned()),
        ..RunQuery::default()
    };
    let runs = services
        .journal
        .read(move |store| store.list_runs(&query))
        .await?;
    Ok(runs
        .into_iter()
        .filter(|view| live_worktree(view).is_some())
        .collect())
}

/// Removes the worktree the run's log records and records `WORKTREE_REMOVED`.
async fn remove_recorded(
    services: &Services,
    run_id: RunId,
) -> Result<Option<String>, RuntimeError> {
    services.remove_worktree_of(run_id).await
}

/// Measures each run's worktree off the async threads.
async fn measure_all(views: Vec<RunView>) -> Result<Vec<RunWorktree>, RuntimeError> {
    tokio::task::spawn_blocking(move || {
        views
            .into_iter()
            .filter_map(|view| {
                let (path, branch) = live_worktree(&view)?;
                let dir = Path::new(&path);
                Some(RunWorktree {
                    exists: dir.is_dir(),
                    bytes: worktree_bytes(dir),
                    run_id: view.id,
                    name: view.name,
                    status: view.status,
                    workspace_root: view.workspace_root,
                    provider: view.worktree.provider.unwrap_or_default(),
                    path,
                    branch,
                    updated_at: view.updated_at,
                })
            })
            .collect()
    })
    .await
    .map_err(|_| RuntimeError::Shutdown)
}

/// The bytes removing a worktree frees: its files (symbolic links not followed), and git's
/// administrative directory for it, which the worktree's `.git` file points at.
fn worktree_bytes(dir: &Path) -> u64 {
    if !dir.is_dir() {
        return 0;
    }
    let admin = std::fs::read_to_string(dir.join(".git"))
        .ok()
        .and_then(|text| text.strip_prefix("gitdir:").map(|p| dir.join(p.trim())))
        .filter(|admin| admin.is_dir() && !admin.starts_with(dir));
    tree_bytes(dir) + admin.as_deref().map_or(0, tree_bytes)
}

fn tree_bytes(root: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // `DirEntry::metadata` does not follow a symbolic link.
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// `path` made absolute with `.` and `..` resolved, through symbolic links when it exists.
fn normalized(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| {
        let cwd = std::env::current_dir().unwrap_or_default();
        crate::worktree::absolute(&cwd, path)
    })
}
