//! What a person does with a finished run, and with the run worktrees left on disk.
//!
//! Review actions — the diff against the base, a merge on demand, scrapping the branch, a pull
//! request — each record `REVIEW_ACTION {action, detail}`. A merge on demand takes the same safe
//! path as the merge on completion ([`crate::merge`]: a temporary worktree of the target, the
//! run's `verify_cmds` there, a compare-and-swap of the target ref), so the person's checkout is
//! never touched. Worktrees of runs can be listed with their size, removed one by one, or
//! collected once their run is over; each removal records `WORKTREE_REMOVED`. Run branches are
//! only ever deleted by a scrap.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use loop_core::config::Config;
use loop_core::event::{Event, ReviewAction};
use loop_core::projection::RunView;
use loop_core::time::rfc3339_ms;
use loop_core::{Command, DomainError, RunId, RunStatus, StepId};
use loop_store::RunQuery;
use serde::Serialize;

use crate::artifacts::RunFiles;
use crate::error::RuntimeError;
use crate::git;
use crate::merge::{self, MergePlan};
use crate::runtime::Runtime;
use crate::step_output::StepOutput;

/// Patches beyond this many bytes in all are left out of a [`RunDiff`] (the stats stay).
const MAX_PATCH_BYTES: usize = 8 << 20;
/// How long `git push` and each `gh` call may take before they are stopped.
const PR_TIMEOUT: Duration = Duration::from_secs(120);
/// `git log` fields and records, separated by the ASCII unit and record separators.
const LOG_FORMAT: &str = "--format=%H%x1f%an%x1f%at%x1f%s%x1e";

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

impl Runtime {
    /// The commits and changed files of a finished run's branch against its base, with stats
    /// and patches, from two git calls (`git log base..run`, `git diff base...run`).
    ///
    /// Records `REVIEW_ACTION {action: diff, detail {commits, files}}`, unless the run's last
    /// event is that same record: looking again at an unchanged diff adds nothing to the log.
    pub async fn diff(&self, run_id: RunId) -> Result<RunDiff, RuntimeError> {
        let view = self.get(run_id).await?;
        require_finished(&view, "diff")?;
        let branch = RunBranch::of(view)?;
        let dir = branch.workspace();
        let (base, run) = (&branch.base_branch, &branch.run_branch);
        let gone = |error: git::GitError| {
            invalid(
                format!("diff of run {run_id}"),
                format!(
                    "cannot compare {run} with {base} (was the branch scrapped or deleted?): \
                     {}",
                    error.stderr
                ),
            )
        };
        let log = git::run(
            &dir,
            &[
                "log",
                "--no-color",
                "--no-show-signature",
                LOG_FORMAT,
                &format!("{base}..{run}"),
                "--",
            ],
        )
        .await
        .map_err(gone)?;
        let patch = git::run(
            &dir,
            &[
                "-c",
                "core.quotePath=false",
                "diff",
                "--no-color",
                "--no-ext-diff",
                "-M",
                "-z",
                "--numstat",
                "--patch",
                &format!("{base}...{run}"),
                "--",
            ],
        )
        .await
        .map_err(gone)?;
        let commits = parse_log(&log);
        let (files, truncated) = parse_diff(&patch);
        let diff = RunDiff {
            run_id,
            base_branch: branch.base_branch.clone(),
            run_branch: branch.run_branch.clone(),
            additions: files.iter().map(|f| f.additions).sum(),
            deletions: files.iter().map(|f| f.deletions).sum(),
            commits,
            files,
            truncated,
        };
        let action = ReviewAction {
            action: "diff".to_owned(),
            detail: detail([
                ("commits", diff.commits.len().to_string()),
                ("files", diff.files.len().to_string()),
            ]),
        };
        let records = self.shared.journal.read_run(run_id).await?;
        let same = matches!(records.last().map(|r| &r.event), Some(Event::ReviewAction(last)) if *last == action);
        if !same {
            self.shared
                .journal
                .execute(run_id, vec![Command::Review(action)])
                .await?;
        }
        Ok(diff)
    }

    /// Merges a COMPLETED run's branch into `target` (default: its `merge_target_branch`) with
    /// `strategy` (`merge` or `squash`; default: its `merge_strategy`, `squash` when that is
    /// `none`), the way a merge on completion does: in a temporary worktree, verified with the
    /// run's `verify_cmds`, the target ref moved only if it has not moved meanwhile.
    ///
    /// Records `REVIEW_ACTION {action: merge, detail {commit, target, strategy}}`; a merge that
    /// does not land records `detail {code, conflict, target, strategy}`, leaves the target
    /// where it was and is [`RuntimeError::MergeFailed`].
    pub async fn merge(
        &self,
        run_id: RunId,
        strategy: Option<&str>,
        target: Option<&str>,
    ) -> Result<MergeOutcome, RuntimeError> {
        let view = self.get(run_id).await?;
        if view.status != RunStatus::Completed {
            return Err(DomainError::IllegalInState {
                action: "merge",
                status: view.status,
            }
            .into());
        }
        let branch = RunBranch::of(view)?;
        let state = self.shared.journal.state(run_id).await?;
        let created = state.created().ok_or(RuntimeError::UnknownRun(run_id))?;
        let config = Config::from_frozen(&created.config);
        let target = match target.filter(|t| !t.is_empty()) {
            Some(target) => target.to_owned(),
            None => match config.text("merge_target_branch") {
                "" => {
                    return Err(invalid(
                        format!("merge of run {run_id}"),
                        "the run has no merge_target_branch: name the branch to merge into",
                    ));
                }
                target => target.to_owned(),
            },
        };
        if target == branch.run_branch {
            return Err(invalid(
                format!("merge of run {run_id}"),
                format!("{target} is the run's own branch"),
            ));
        }
        let strategy = match (strategy, config.text("merge_strategy")) {
            (Some("merge"), _) | (None, "merge") => "merge",
            (Some("squash"), _) | (None, _) => "squash",
            (Some(other), _) => {
                return Err(invalid(
                    "merge strategy",
                    format!("{other:?} is not one of merge, squash"),
                ));
            }
        };
        let workspace = branch.workspace();
        let repo = main_repo(&workspace).await?;
        check_owner(&repo, &branch.run_branch, run_id).await?;

        let files = RunFiles::new(created, run_id, &config, &self.shared.data_dir);
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| RuntimeError::Io { what, source }
        };
        files.create().map_err(io("the run directory"))?;
        let log_name = "review-merge.log";
        let log_path = files.path(log_name);
        // Nobody follows this output live: it is not a step of the run.
        let (live, _) = tokio::sync::broadcast::channel(1);
        let mut output = StepOutput::create(
            run_id,
            StepId::from_uuid(uuid::Uuid::now_v7()),
            &log_path,
            live,
        )
        .map_err(io(log_name))?;
        // A scratch directory of its own, so two merges at once never share one.
        let scratch = self
            .shared
            .data_dir
            .join("merge")
            .join(format!("{run_id}-review-{}", uuid::Uuid::new_v4().simple()));
        let message = format!("loop: {} (run {run_id})", created.name);
        let verify_cmds = config.verify_cmds();
        let env = vec![
            ("LOOP_RUN_ID".to_owned(), run_id.to_string()),
            ("LOOP_PHASE".to_owned(), "merge".to_owned()),
            (
                "LOOP_RUN_DIR".to_owned(),
                files.dir().to_string_lossy().into_owned(),
            ),
        ];
        let verify_timeout = match config.count("verify_timeout_sec") {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        };
        let plan = MergePlan {
            repo: &repo,
            run_branch: &branch.run_branch,
            base_branch: &branch.base_branch,
            target: &target,
            strategy,
            message: &message,
            verify_cmds: &verify_cmds,
            verify_timeout,
            env: &env,
            scratch: &scratch,
        };
        let cancel = self.shared.shutdown.child_token();
        let result = merge::merge(&plan, &mut output, &cancel).await;
        // The merge happened or not either way: a log that could not be written must not
        // keep it out of the run's record.
        let written = output
            .finish()
            .and_then(|_| files.record("review_merge", log_name))
            .unwrap_or_default();
        let mut commands: Vec<Command> = written.into_iter().map(Command::RecordArtifact).collect();
        let (detail, outcome) = match result {
            Ok(commit) => (
                detail([
                    ("commit", commit.clone()),
                    ("target", target.clone()),
                    ("strategy", strategy.to_owned()),
                ]),
                Ok(MergeOutcome {
                    run_id,
                    commit,
                    target,
                    strategy: strategy.to_owned(),
                    log_path: log_path.to_string_lossy().into_owned(),
                }),
            ),
            Err(failure) => (
                detail([
                    ("code", failure.code.to_owned()),
                    ("conflict", failure.detail.clone()),
                    ("target", target),
                    ("strategy", strategy.to_owned()),
                ]),
                Err(RuntimeError::MergeFailed {
                    run_id,
                    code: failure.code,
                    detail: failure.detail,
                }),
            ),
        };
        commands.push(Command::Review(ReviewAction {
            action: "merge".to_owned(),
            detail,
        }));
        self.shared.journal.execute(run_id, commands).await?;
        outcome
    }

    /// Throws a finished run's work away: removes its worktree (recording `WORKTREE_REMOVED`)
    /// and deletes its branch, then records `REVIEW_ACTION {action: scrap, detail {branch,
    /// commit, worktree}}`. A branch that another run has taken since is refused.
    pub async fn scrap(&self, run_id: RunId) -> Result<ScrapOutcome, RuntimeError> {
        let view = self.get(run_id).await?;
        require_finished(&view, "scrap")?;
        let branch = RunBranch::of(view)?;
        let repo = main_repo(&branch.workspace()).await?;
        check_owner(&repo, &branch.run_branch, run_id).await?;
        let worktree_removed = self.remove_recorded(run_id).await?;
        // A worktree deleted by hand still holds its branch until git forgets it.
        let _ = git::run(&repo, &["worktree", "prune"]).await;
        let commit = git::branch_commit(&repo, &branch.run_branch).await;
        if commit.is_some() {
            git::run(&repo, &["branch", "-D", &branch.run_branch])
                .await
                .map_err(|error| {
                    invalid(
                        format!("scrap of run {run_id}"),
                        format!("cannot delete {}: {}", branch.run_branch, error.stderr),
                    )
                })?;
        }
        let mut pairs = BTreeMap::new();
        pairs.insert("branch".to_owned(), branch.run_branch.clone());
        if let Some(commit) = &commit {
            pairs.insert("commit".to_owned(), commit.clone());
        }
        if let Some(path) = &worktree_removed {
            pairs.insert("worktree".to_owned(), path.clone());
        }
        self.shared
            .journal
            .execute(
                run_id,
                vec![Command::Review(ReviewAction {
                    action: "scrap".to_owned(),
                    detail: pairs,
                })],
            )
            .await?;
        Ok(ScrapOutcome {
            run_id,
            worktree_removed,
            branch_deleted: commit.is_some().then(|| branch.run_branch.clone()),
            branch_commit: commit,
        })
    }

    /// Pushes a finished run's branch to the repository's remote (`origin`, else the first
    /// one) and opens a pull request with `gh pr create` against its `merge_target_branch`, else
    /// its base branch. Records `REVIEW_ACTION {action: create_pr, detail {url, branch, base,
    /// remote}}`. Without a remote, or without `gh`, nothing is pushed and the error says what
    /// to do.
    pub async fn create_pr(
        &self,
        run_id: RunId,
        title: Option<&str>,
        body: Option<&str>,
    ) -> Result<PullRequest, RuntimeError> {
        let view = self.get(run_id).await?;
        require_finished(&view, "create a pull request for")?;
        let branch = RunBranch::of(view)?;
        let what = || format!("pull request for run {run_id}");
        let repo = main_repo(&branch.workspace()).await?;
        if git::branch_commit(&repo, &branch.run_branch)
            .await
            .is_none()
        {
            return Err(invalid(
                what(),
                format!("the branch {} no longer exists", branch.run_branch),
            ));
        }
        let remotes = git::run(&repo, &["remote"])
            .await
            .map_err(|e| invalid(what(), e.to_string()))?;
        let remotes: Vec<&str> = remotes.lines().filter(|r| !r.is_empty()).collect();
        let Some(remote) = remotes
            .iter()
            .find(|r| **r == "origin")
            .or(remotes.first())
            .map(|r| (*r).to_owned())
        else {
            return Err(invalid(
                what(),
                format!(
                    "the repository {} has no git remote to push {} to: add one \
                     (`git remote add origin <url>`), or merge it locally instead",
                    repo.display(),
                    branch.run_branch
                ),
            ));
        };
        let no_gh = |reason: String| {
            invalid(
                what(),
                format!(
                    "the GitHub CLI `gh` is needed to open a pull request ({reason}): install \
                     it (https://cli.github.com) and run `gh auth login`"
                ),
            )
        };
        match tool("gh", &["--version"], &repo, PR_TIMEOUT).await {
            Ok(_) => {}
            Err(ToolError::Missing) => return Err(no_gh("it is not on PATH".to_owned())),
            Err(error) => return Err(no_gh(error.to_string())),
        }
        tool(
            "git",
            &["push", "-u", &remote, &branch.run_branch],
            &repo,
            PR_TIMEOUT,
        )
        .await
        .map_err(|error| {
            invalid(
                what(),
                format!("cannot push {} to {remote}: {error}", branch.run_branch),
            )
        })?;
        let base = branch
            .view
            .worktree
            .merge_target_branch
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| branch.base_branch.clone());
        let title = title
            .filter(|t| !t.trim().is_empty())
            .map_or_else(|| format!("loop: {}", branch.view.name), str::to_owned);
        let body = body.map_or_else(
            || {
                format!(
                    "Run `{run_id}` of loop on `{}`: {} of {} tasks in {} iterations.",
                    branch.view.spec_path,
                    branch.view.tasks_done,
                    branch.view.tasks_total,
                    branch.view.iteration
                )
            },
            str::to_owned,
        );
        let answer = tool(
            "gh",
            &[
                "pr",
                "create",
                "--head",
                &branch.run_branch,
                "--base",
                &base,
                "--title",
                &title,
                "--body",
                &body,
            ],
            &repo,
            PR_TIMEOUT,
        )
        .await
        .map_err(|error| invalid(what(), format!("`gh pr create` failed: {error}")))?;
        let url = answer
            .lines()
            .rev()
            .map(str::trim)
            .find(|line| line.starts_with("http"))
            .unwrap_or(answer.trim())
            .to_owned();
        self.shared
            .journal
            .execute(
                run_id,
                vec![Command::Review(ReviewAction {
                    action: "create_pr".to_owned(),
                    detail: detail([
                        ("url", url.clone()),
                        ("branch", branch.run_branch.clone()),
                        ("base", base.clone()),
                        ("remote", remote.clone()),
                    ]),
                })],
            )
            .await?;
        Ok(PullRequest {
            run_id,
            url,
            branch: branch.run_branch,
            base,
            remote,
        })
    }

    /// The worktrees runs still have (created and not removed, by the log), of one workspace
    /// or of all, newest run first, each with its size on disk.
    pub async fn worktrees(
        &self,
        workspace: Option<&Path>,
    ) -> Result<Vec<RunWorktree>, RuntimeError> {
        let views = self.runs_with_worktrees(workspace).await?;
        measure_all(views).await
    }

    /// Removes the worktrees of finished runs (COMPLETED, FAILED, CANCELED) of one workspace or
    /// of all, whose run last changed at least `older_than` ago (all of them when `None`), and
    /// records `WORKTREE_REMOVED` for each. Run branches are kept. A dry run changes nothing
    /// and reports the same list.
    pub async fn gc(
        &self,
        workspace: Option<&Path>,
        dry_run: bool,
        older_than: Option<Duration>,
    ) -> Result<GcReport, RuntimeError> {
        let cutoff = older_than.map(|age| {
            self.shared
                .clock
                .now_ms()
                .saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
        });
        let views: Vec<RunView> = self
            .runs_with_worktrees(workspace)
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
                let state = self.shared.journal.state(worktree.run_id).await?;
                if !state.status().is_some_and(RunStatus::is_terminal) {
                    continue;
                }
                if let Err(error) = self.remove_recorded(worktree.run_id).await {
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
    pub async fn remove_worktree(
        &self,
        path: &Path,
        force: bool,
    ) -> Result<RunWorktree, RuntimeError> {
        let wanted = normalized(path);
        let view = self
            .runs_with_worktrees(None)
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
        self.remove_recorded(worktree.run_id).await?;
        Ok(worktree)
    }

    /// Runs whose log records a worktree not yet removed, newest first.
    async fn runs_with_worktrees(
        &self,
        workspace: Option<&Path>,
    ) -> Result<Vec<RunView>, RuntimeError> {
        let query = RunQuery {
            workspace_root: workspace.map(|w| w.to_string_lossy().into_owned()),
            ..RunQuery::default()
        };
        let runs = self.list(query).await?;
        Ok(runs
            .into_iter()
            .filter(|view| live_worktree(view).is_some())
            .collect())
    }

    /// Removes the worktree the run's log records and records `WORKTREE_REMOVED`.
    async fn remove_recorded(&self, run_id: RunId) -> Result<Option<String>, RuntimeError> {
        self.shared.remove_worktree_of(run_id).await
    }
}

/// The main repository of the one `dir` is in (not a worktree of it).
async fn main_repo(dir: &Path) -> Result<PathBuf, RuntimeError> {
    let common = git::run(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .await
    .map_err(|error| invalid(format!("repository of {}", dir.display()), error.stderr))?;
    let common = PathBuf::from(common);
    Ok(common.parent().map(Path::to_path_buf).unwrap_or(common))
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

fn parse_log(text: &str) -> Vec<DiffCommit> {
    text.split('\x1e')
        .map(|record| record.trim_start_matches('\n'))
        .filter(|record| !record.is_empty())
        .filter_map(|record| {
            let mut fields = record.splitn(4, '\x1f');
            let hash = fields.next()?.to_owned();
            let author = fields.next()?.to_owned();
            let seconds: i64 = fields.next()?.parse().ok()?;
            let subject = fields.next()?.to_owned();
            Some(DiffCommit {
                hash,
                author,
                authored_at: rfc3339_ms(seconds.saturating_mul(1000)),
                subject,
            })
        })
        .collect()
}

/// Parses `git diff -z --numstat --patch`: the stats, each `added\tdeleted\tpath\0` (a rename
/// is `added\tdeleted\t\0old\0new\0`, binary files count `-`), an empty record, then the
/// patches in the same order. Returns the files and whether patches were left out.
fn parse_diff(text: &str) -> (Vec<FileDiff>, bool) {
    let mut files = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('\0') {
            rest = after;
            break;
        }
        let Some(entry) = numstat_entry(rest) else {
            break;
        };
        let (file, after) = entry;
        files.push(file);
        rest = after;
    }
    let patches = split_patches(rest);
    if patches.len() != files.len() {
        // Never pair a patch with the wrong file: keep the stats alone.
        return (files, !patches.is_empty());
    }
    let mut used = 0;
    let mut truncated = false;
    for (file, patch) in files.iter_mut().zip(patches) {
        if used + patch.len() > MAX_PATCH_BYTES {
            truncated = true;
            continue;
        }
        used += patch.len();
        let mut patch = patch.to_owned();
        if !patch.ends_with('\n') {
            patch.push('\n');
        }
        file.patch = Some(patch);
    }
    (files, truncated)
}

fn numstat_entry(text: &str) -> Option<(FileDiff, &str)> {
    let (added, rest) = text.split_once('\t')?;
    let (deleted, rest) = rest.split_once('\t')?;
    let (path, old_path, rest) = match rest.strip_prefix('\0') {
        Some(renamed) => {
            let (old, rest) = renamed.split_once('\0')?;
            let (new, rest) = rest.split_once('\0')?;
            (new, Some(old.to_owned()), rest)
        }
        None => {
            let (path, rest) = rest.split_once('\0')?;
            (path, None, rest)
        }
    };
    let binary = added == "-" && deleted == "-";
    let file = FileDiff {
        path: path.to_owned(),
        old_path,
        additions: added.parse().unwrap_or(0),
        deletions: deleted.parse().unwrap_or(0),
        binary,
        patch: None,
    };
    Some((file, rest))
}

/// The patch text cut at each `diff --git` line (patch lines never start with it: they start
/// with a space, `+`, `-`, `@` or `\`).
fn split_patches(text: &str) -> Vec<&str> {
    const HEADER: &str = "diff --git ";
    let mut starts: Vec<usize> = text
        .match_indices(&format!("\n{HEADER}"))
        .map(|(at, _)| at + 1)
        .collect();
    if text.starts_with(HEADER) {
        starts.insert(0, 0);
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| &text[start..starts.get(n + 1).copied().unwrap_or(text.len())])
        .collect()
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
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut out = PathBuf::new();
    for component in absolute.components() {
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

/// Why a `git push` or `gh` call failed.
#[derive(Debug, thiserror::Error)]
enum ToolError {
    #[error("not found")]
    Missing,
    #[error("gave no answer within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error("{0}")]
    Failed(String),
}

/// Runs a program that may talk to a network: stdin closed, no prompts, stopped (and its
/// process killed) after `timeout`. Its stdout, or what it said when it failed.
async fn tool(
    program: &str,
    args: &[&str],
    dir: &Path,
    timeout: Duration,
) -> Result<String, ToolError> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GH_PROMPT_DISABLED", "1")
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => ToolError::Missing,
            _ => ToolError::Failed(error.to_string()),
        })?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| ToolError::TimedOut(timeout))?
        .map_err(|error| ToolError::Failed(error.to_string()))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Err(ToolError::Failed(if stderr.is_empty() {
        format!("{} ({})", stdout, output.status)
    } else {
        stderr
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stats_renames_binaries_and_patches_in_order() {
        let text = "-\t-\tbin.dat\x001\t2\tf.txt\x000\t0\t\x00old.txt\x00new.txt\x00\x00\
            diff --git a/bin.dat b/bin.dat\nBinary files differ\n\
            diff --git a/f.txt b/f.txt\n--- a/f.txt\n+++ b/f.txt\n@@ -1,2 +1 @@\n-a\n-b\n+c\n\
            diff --git a/old.txt b/new.txt\nsimilarity index 100%\nrename from old.txt\nrename to new.txt";
        let (files, truncated) = parse_diff(text);
        assert!(!truncated);
        let summary: Vec<(&str, Option<&str>, u64, u64, bool)> = files
            .iter()
            .map(|f| {
                (
                    f.path.as_str(),
                    f.old_path.as_deref(),
                    f.additions,
                    f.deletions,
                    f.binary,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("bin.dat", None, 0, 0, true),
                ("f.txt", None, 1, 2, false),
                ("new.txt", Some("old.txt"), 0, 0, false),
            ]
        );
        assert!(
            files[1]
                .patch
                .as_deref()
                .unwrap()
                .starts_with("diff --git a/f.txt")
        );
        assert!(files[1].patch.as_deref().unwrap().ends_with("+c\n"));
        assert!(
            files[2]
                .patch
                .as_deref()
                .unwrap()
                .ends_with("rename to new.txt\n")
        );
    }

    #[test]
    fn an_empty_diff_has_no_files() {
        assert_eq!(parse_diff(""), (Vec::new(), false));
        assert!(parse_log("").is_empty());
    }

    #[test]
    fn parses_log_records() {
        let text = "abc\x1fAda\x1f1790000000\x1fsecond: with \x1f in it\x1e\ndef\x1fBo\x1f1790000001\x1ffirst\x1e";
        let commits = parse_log(text);
        assert_eq!(commits.len(), 2);
        assert_eq!(commits[0].subject, "second: with \x1f in it");
        assert_eq!(commits[1].hash, "def");
        assert_eq!(commits[1].authored_at, rfc3339_ms(1_790_000_001_000));
    }
}
