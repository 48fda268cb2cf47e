//! [`RunContext`]: what every effect on a run needs to know of it, loaded once from its log —
//! the request and its typed configuration, its files, where it works, the environment its
//! children get, how its agent calls are bounded and retried. The driver, the postmortem, the
//! review actions and the notifier all take it from here instead of rebuilding it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use loop_core::config::{AgentName, RunConfig};
use loop_core::event::{ExitReason, RunCreated, WorktreeCreated};
use loop_core::plan::Plan;
use loop_core::policy::RetryPolicy;
use loop_core::{RunId, RunState};

use crate::artifacts::{RunFiles, sha256_hex};
use crate::process::Limits;

/// A `result` line ends an agent call this long after it arrives, exited or not.
pub(crate) const AFTER_RESULT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub(crate) struct RunContext {
    pub run_id: RunId,
    pub created: RunCreated,
    pub config: RunConfig,
    pub files: RunFiles,
    /// The run's worktree, while the log records one.
    pub worktree: Option<WorktreeCreated>,
    /// Where the agent works: the run's worktree while it is on disk, else the workspace.
    pub workdir: PathBuf,
    /// The repository's URL, for a run that names one (`repo_url`); its `workspace_root` here
    /// is then this node's checkout of it, and its worktree's path this node's.
    pub repo_url: Option<String>,
}

impl RunContext {
    /// The context of a run as its folded state says; `None` before it is created.
    pub fn of(state: &RunState, data_dir: &Path) -> Option<RunContext> {
        let mut created = state.created()?.clone();
        let run_id = state.run_id()?;
        let config = RunConfig::from_frozen(&created.config);
        let repo_url = crate::repos::url_of(&created.workspace_root).map(str::to_owned);
        let mut worktree = state.worktree().cloned();
        if let Some(url) = &repo_url {
            let checkout = crate::repos::checkout_dir(data_dir, url);
            created.workspace_root = checkout.to_string_lossy().into_owned();
            // The path the log records is the node's that made the worktree; here it is this
            // node's, made again from the pushed branch when missing.
            if let Some(worktree) = worktree.as_mut()
                && let Ok(path) =
                    crate::worktree::worktree_path(&checkout, &worktree.run_branch, &config)
            {
                worktree.path = path.to_string_lossy().into_owned();
            }
        }
        let files = RunFiles::new(&created, run_id, &config, data_dir);
        let workdir = worktree
            .as_ref()
            .map(|worktree| PathBuf::from(&worktree.path))
            .filter(|path| path.is_dir())
            .unwrap_or_else(|| PathBuf::from(&created.workspace_root));
        Some(RunContext {
            run_id,
            created,
            config,
            files,
            worktree,
            workdir,
            repo_url,
        })
    }

    /// A path of the run's request (relative to the workspace, or absolute in it) as seen from
    /// the working directory.
    pub fn in_workdir(&self, path: &str) -> PathBuf {
        in_workdir(&self.created, &self.workdir, path)
    }

    pub fn plan_path(&self) -> PathBuf {
        self.in_workdir(&self.created.plan_path)
    }

    pub fn spec_path(&self) -> PathBuf {
        self.in_workdir(&self.created.spec_path)
    }

    /// The plan as the working tree has it now.
    pub async fn read_plan(&self) -> Option<Plan> {
        let bytes = self.read_agent_file(&self.created.plan_path).await?;
        Some(Plan::parse(&String::from_utf8(bytes).ok()?))
    }

    /// SHA-256 of the plan file now.
    pub async fn plan_digest(&self) -> Option<String> {
        let bytes = self.read_agent_file(&self.created.plan_path).await?;
        Some(sha256_hex(&bytes))
    }

    /// A file of the working tree (`path` as the run was given it), which the agent may have
    /// made anything: read only as a regular file inside the tree, up to 16 MiB
    /// ([`crate::confined`]); `None` otherwise, as for a missing file.
    pub async fn read_agent_file(&self, path: &str) -> Option<Vec<u8>> {
        let relative =
            crate::confined::beneath(Path::new(&self.created.workspace_root), Path::new(path));
        match crate::confined::read_async(&self.workdir, relative, 16 << 20).await {
            Ok(bytes) => Some(bytes),
            Err(crate::confined::Refused::Missing) => None,
            Err(refused) => {
                tracing::warn!(run_id = %self.run_id, path, %refused, "not reading a file of the run's working tree");
                None
            }
        }
    }

    /// The `LOOP_*` variables of a child working on this run in `phase`.
    pub fn env(&self, iteration: u32, phase: &str) -> Vec<(String, String)> {
        let text = |path: &Path| path.to_string_lossy().into_owned();
        vec![
            ("LOOP_RUN_ID".to_owned(), self.run_id.to_string()),
            ("LOOP_ITERATION".to_owned(), iteration.to_string()),
            ("LOOP_PHASE".to_owned(), phase.to_owned()),
            ("LOOP_RUN_DIR".to_owned(), text(self.files.dir())),
            // The person's workspace: a call that runs in a scratch directory (naming, the
            // postmortem) can still find what it was given there.
            (
                "LOOP_WORKSPACE".to_owned(),
                self.created.workspace_root.clone(),
            ),
            ("LOOP_SPEC_PATH".to_owned(), text(&self.spec_path())),
            ("LOOP_PLAN_PATH".to_owned(), text(&self.plan_path())),
        ]
    }

    /// How long an agent call may take and stay silent.
    pub fn agent_limits(&self) -> Limits {
        Limits {
            timeout: self.config.agent_timeout,
            idle: self.config.agent_idle_timeout,
            after_done: Some(AFTER_RESULT),
            heartbeat: self.config.agent_heartbeat,
        }
    }

    /// How the run's agent calls are retried.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            failed_retries: self.config.agent_retries,
            failed_backoff: self.config.agent_retry_backoff,
            transient_retries: self.config.transient_retries,
            transient_backoff: self.config.transient_backoff,
            max_backoff: RetryPolicy::MAX_BACKOFF,
            wait_on_usage_limit: self.config.usage_limit_wait,
            // `claude_failed` is Claude Code's; any other agent fails as itself.
            fails_as: if self.config.agent == AgentName::Claude {
                ExitReason::ClaudeFailed
            } else {
                ExitReason::AgentFailed
            },
        }
    }

    /// The commit message of the run's merge.
    pub fn merge_message(&self) -> String {
        format!("loop: {} (run {})", self.created.name, self.run_id)
    }
}

/// A path of a request as seen from `workdir`: relative paths join it; absolute ones inside the
/// workspace are moved under it.
pub(crate) fn in_workdir(created: &RunCreated, workdir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    match path.strip_prefix(&created.workspace_root) {
        Ok(relative) => workdir.join(relative),
        Err(_) => workdir.join(path),
    }
}
