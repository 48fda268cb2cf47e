//! `worktree_provider=worktrunk`: the run's branch and worktree made by Worktrunk (`wt`), so the
//! person's own `wt` configuration (worktree paths, hooks, `.worktreeinclude`) applies.
//!
//! The run branch is chosen exactly as the git provider chooses it and remembered the same way
//! (`git config branch.<b>.loop-run`); Worktrunk creates the worktree and says where it put it.
//! Every `wt` call runs without a terminal: stdin is null, `-y` answers hook approval prompts,
//! and each call has a time limit after which its whole process group is stopped.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use loop_core::RunId;
use loop_core::config::RunConfig;
use loop_core::event::Provider;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::agent::BoxFuture;
use crate::git;
use crate::worktree::git::{absolute, run_branch};
use crate::worktree::{Workspace, WorktreeError, WorktreeProvider};

/// How long `wt --version` may take before Worktrunk counts as absent.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long creating, filling or removing a worktree may take: Worktrunk runs the project's
/// blocking hooks and copies build caches, which can be slow but must not hang a run forever.
const WORK_TIMEOUT: Duration = Duration::from_secs(600);
/// How long output is still read after `wt` exited (a background hook may hold the pipe).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How much of a failing call's output its error keeps.
const TAIL_LINES: usize = 3;
const TAIL_CHARS: usize = 400;

#[derive(Clone, Copy, Debug, Default)]
pub struct Worktrunk;

/// Which `wt` to run, and with which user config file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Settings {
    bin: String,
    config_path: String,
}

impl Settings {
    fn of(config: &RunConfig) -> Settings {
        Settings {
            bin: config.worktrunk_bin.clone(),
            config_path: config.worktrunk_config_path.clone().unwrap_or_default(),
        }
    }
}

impl WorktreeProvider for Worktrunk {
    fn name(&self) -> Provider {
        Provider::Worktrunk
    }

    fn prepare<'a>(
        &'a self,
        workspace_root: &'a Path,
        run_id: RunId,
        run_name: &'a str,
        config: &'a RunConfig,
    ) -> BoxFuture<'a, Result<Workspace, WorktreeError>> {
        Box::pin(async move {
            prepare(
                &Settings::of(config),
                workspace_root,
                run_id,
                run_name,
                config,
            )
            .await
        })
    }

    fn remove<'a>(
        &'a self,
        workspace: &'a Workspace,
        config: &'a RunConfig,
    ) -> BoxFuture<'a, Result<(), WorktreeError>> {
        Box::pin(remove_with(Settings::of(config), workspace))
    }

    fn available<'a>(&'a self, config: &'a RunConfig) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            wt(&Settings::of(config), None, &["--version"], VERSION_TIMEOUT)
                .await
                .is_ok()
        })
    }
}

async fn prepare(
    settings: &Settings,
    workspace_root: &Path,
    run_id: RunId,
    run_name: &str,
    config: &RunConfig,
) -> Result<Workspace, WorktreeError> {
    let (root, base, branch) = run_branch(workspace_root, run_id, run_name, config).await?;

    // A restarted run whose branch already exists switches to it; `--create` would refuse.
    let mut args = vec!["switch"];
    if git::branch_commit(&root, &branch).await.is_some() {
        args.push(&branch);
    } else {
        args.extend(["--create", &branch, "--base", &base]);
    }
    args.extend(["--no-cd", "--format", "json", "-y"]);
    let output = wt(settings, Some(&root), &args, WORK_TIMEOUT).await?;
    let switched = Switched::parse(&output).ok_or_else(|| {
        WorktreeError(format!(
            "{} printed no JSON line with the worktree's path; it printed: {}",
            shown(settings, &args, Some(&root)),
            tail(&output)
        ))
    })?;
    let path = absolute(&root, &switched.path);
    if !path.is_dir() {
        return Err(WorktreeError(format!(
            "{} reported the worktree of {branch} at {}, but there is no directory there",
            shown(settings, &args, Some(&root)),
            path.display()
        )));
    }
    let reused = switched.action != "created";

    git::set_branch_owner(&root, &branch, &run_id.to_string())
        .await
        .map_err(|e| WorktreeError(e.to_string()))?;
    // Like the git provider, only a new worktree is filled; a reused one has its files.
    if !reused && config.worktrunk_copy_ignored {
        let args = ["step", "copy-ignored", "--to", &branch];
        wt(settings, Some(&root), &args, WORK_TIMEOUT).await?;
    }
    Ok(Workspace {
        provider: Provider::Worktrunk,
        path,
        base_branch: base,
        run_branch: branch,
        reused,
    })
}

/// `wt remove <branch> --foreground -y` in the repository's main worktree: in the foreground,
/// so the worktree is gone by the time the run records it gone.
async fn remove_with(settings: Settings, workspace: &Workspace) -> Result<(), WorktreeError> {
    let settings = &settings;
    if !workspace.path.exists() {
        return Ok(());
    }
    let main = git::worktrees(&workspace.path)
        .await
        .map_err(|e| WorktreeError(e.to_string()))?
        .into_iter()
        .next()
        .map(|w| PathBuf::from(w.path))
        .ok_or_else(|| {
            WorktreeError(format!(
                "cannot find the repository of the worktree {}",
                workspace.path.display()
            ))
        })?;
    let args = [
        "remove",
        workspace.run_branch.as_str(),
        "--foreground",
        "-y",
    ];
    wt(settings, Some(&main), &args, WORK_TIMEOUT).await?;
    Ok(())
}

/// What `wt switch --format json` reports.
#[derive(Debug)]
struct Switched {
    /// `created`, `existing` or `already_at`.
    action: String,
    path: PathBuf,
}

impl Switched {
    /// The last JSON object line with a `path`; other lines (progress, hook output) are skipped.
    fn parse(output: &str) -> Option<Switched> {
        output.lines().rev().find_map(|line| {
            let line = line.trim();
            if !line.starts_with('{') {
                return None;
            }
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            Some(Switched {
                action: value.get("action")?.as_str()?.to_owned(),
                path: PathBuf::from(value.get("path")?.as_str()?),
            })
        })
    }
}

/// A call as a person would type it, and where it ran.
fn shown(settings: &Settings, args: &[&str], dir: Option<&Path>) -> String {
    let place = dir.map_or_else(String::new, |d| format!(" in {}", d.display()));
    format!("`{} {}`{place}", settings.bin, args.join(" "))
}

/// Runs `wt <args>` in `dir` without a terminal; its stdout, or an error naming the call, how it
/// ended and the tail of what it said.
async fn wt(
    settings: &Settings,
    dir: Option<&Path>,
    args: &[&str],
    timeout: Duration,
) -> Result<String, WorktreeError> {
    let fail = |how: String| WorktreeError(format!("{} {how}", shown(settings, args, dir)));
    let mut command = tokio::process::Command::new(&settings.bin);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout stops the hooks it runs too, and it can never take the
        // terminal's foreground.
        .process_group(0)
        .kill_on_drop(true)
        .env("GIT_TERMINAL_PROMPT", "0");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    if !settings.config_path.is_empty() {
        command.env("WORKTRUNK_CONFIG_PATH", &settings.config_path);
    }
    let mut child = command.spawn().map_err(|e| {
        fail(format!(
            "could not start ({e}): set worktrunk_bin to the Worktrunk binary"
        ))
    })?;
    let group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Pid::from_raw);
    let stdout = Captured::start(child.stdout.take());
    let stderr = Captured::start(child.stderr.take());
    let status: Option<ExitStatus> = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => Some(status.map_err(|e| fail(format!("failed: {e}")))?),
        Err(_) => {
            if let Some(group) = group {
                let _ = killpg(group, Signal::SIGKILL);
            }
            let _ = child.kill().await;
            None
        }
    };
    let (stdout, stderr) = tokio::join!(stdout.finish(), stderr.finish());
    match status {
        Some(status) if status.success() => Ok(stdout),
        Some(status) => {
            let said = if stderr.trim().is_empty() {
                &stdout
            } else {
                &stderr
            };
            Err(fail(format!("failed ({status}): {}", tail(said))))
        }
        None => Err(fail(format!(
            "did not end within {} s and was stopped: {}",
            timeout.as_secs(),
            tail(&stderr)
        ))),
    }
}

/// The last few non-empty lines of `text`, on one line.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return "it printed nothing".to_owned();
    }
    let joined = lines[lines.len().saturating_sub(TAIL_LINES)..].join(" | ");
    let chars = joined.chars().count();
    if chars <= TAIL_CHARS {
        return joined;
    }
    let kept: String = joined.chars().skip(chars - TAIL_CHARS).collect();
    format!("…{kept}")
}

/// A pipe read to its end in the background, kept as it arrives so that what was read is there
/// even when a descendant holds the pipe open past the grace.
struct Captured {
    text: Arc<Mutex<Vec<u8>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Captured {
    fn start(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> Captured {
        let text = Arc::new(Mutex::new(Vec::new()));
        let task = pipe.map(|mut pipe| {
            let text = Arc::clone(&text);
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                    text.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&buf[..n]);
                }
            })
        });
        Captured { text, task }
    }

    async fn finish(self) -> String {
        if let Some(mut task) = self.task
            && tokio::time::timeout(DRAIN_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
        let bytes = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
