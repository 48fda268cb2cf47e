//! `loopctl worktrees`, `worktree-rm` and `gc`, through the daemon or with the runtime embedded
//! over a log file (see `source.rs`). The worktrees are those the log records for runs and has
//! not seen removed; every removal is recorded as `WORKTREE_REMOVED`. Run branches are kept.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use loop_api::review::{GcBody, RemoveWorktreeBody};
use loop_runtime::RunWorktree;

use crate::human::size;
use crate::log::embedded;
use crate::output::Output;
use crate::source::Source;
use crate::workspace;

/// `loopctl worktrees`: this workspace's run worktrees (every workspace's with `all`).
pub fn list(source: Source, all: bool, out: &Output) -> anyhow::Result<ExitCode> {
    let workspace = scope(all)?;
    let worktrees = match source {
        Source::Daemon(client) => {
            let root = workspace.as_deref().map(Path::to_string_lossy);
            client.worktrees(root.as_deref())?
        }
        Source::Log(db) => embedded(&db, async |runtime| {
            Ok(runtime.worktrees(workspace.as_deref()).await?)
        })?,
    };
    let envelope = loop_api::review::WorktreesEnvelope { worktrees };
    out.document(&envelope);
    let worktrees = envelope.worktrees;
    if worktrees.is_empty() {
        out.line(&match &workspace {
            Some(dir) => format!("no run worktrees in {}", dir.display()),
            None => "no run worktrees".to_owned(),
        });
        return Ok(ExitCode::SUCCESS);
    }
    out.line(&format!(
        "{:>10}  {:<9}  {:<36}  {:<20}  {:<24}  PATH",
        "SIZE", "STATUS", "RUN", "NAME", "BRANCH"
    ));
    for worktree in &worktrees {
        out.line(&row(worktree));
    }
    let total: u64 = worktrees.iter().map(|w| w.bytes).sum();
    out.line(&format!(
        "{} in {} worktree{}",
        size(total),
        worktrees.len(),
        plural(worktrees.len())
    ));
    Ok(ExitCode::SUCCESS)
}

/// `loopctl worktree-rm PATH [--force]`.
pub fn remove(source: Source, path: &Path, force: bool, out: &Output) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let path = cwd.join(path);
    let removed = match source {
        Source::Daemon(client) => client.remove_worktree(&RemoveWorktreeBody { path, force })?,
        Source::Log(db) => embedded(&db, async |runtime| {
            Ok(runtime.remove_worktree(&path, force).await?)
        })?,
    };
    let document = crate::documents::Removed { removed };
    out.document(&document);
    let removed = document.removed;
    out.line(&format!(
        "removed {} (run {} {}, branch {} kept): {} freed",
        removed.path,
        removed.run_id,
        removed.name,
        removed.branch,
        size(removed.bytes)
    ));
    Ok(ExitCode::SUCCESS)
}

/// `loopctl gc [--dry-run] [--older-than DAYS]`: exits 1 when a worktree could not be removed.
pub fn gc(
    source: Source,
    dry_run: bool,
    older_than: Option<Duration>,
    all: bool,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let workspace = scope(all)?;
    let report = match source {
        Source::Daemon(client) => client.gc(&GcBody {
            dry_run,
            older_than_days: older_than.map(|age| age.as_secs_f64() / 86_400.0),
            workspace_root: workspace,
        })?,
        Source::Log(db) => embedded(&db, async |runtime| {
            Ok(runtime
                .gc(workspace.as_deref(), dry_run, older_than)
                .await?)
        })?,
    };
    out.document(&report);
    let verb = if dry_run { "would remove" } else { "removed" };
    for worktree in &report.removed {
        out.line(&format!(
            "{verb} {} (run {} {}, {}): {}",
            worktree.path,
            worktree.run_id,
            worktree.name,
            worktree.status,
            size(worktree.bytes)
        ));
    }
    for failure in &report.failed {
        out.note(&format!(
            "loopctl: cannot remove {} (run {}): {}",
            failure.path, failure.run_id, failure.error
        ));
    }
    out.line(&format!(
        "{} {} worktree{}, {} {}",
        verb,
        report.removed.len(),
        plural(report.removed.len()),
        if dry_run { "would free" } else { "freed" },
        size(report.bytes_freed)
    ));
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The workspace of the current directory, or `None` for every workspace.
fn scope(all: bool) -> anyhow::Result<Option<PathBuf>> {
    if all {
        return Ok(None);
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(Some(workspace::root_of(&cwd)))
}

fn row(worktree: &RunWorktree) -> String {
    format!(
        "{:>10}  {:<9}  {:<36}  {:<20}  {:<24}  {}{}",
        size(worktree.bytes),
        worktree.status.as_str(),
        worktree.run_id,
        worktree.name,
        worktree.branch,
        worktree.path,
        if worktree.exists { "" } else { " (missing)" }
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
