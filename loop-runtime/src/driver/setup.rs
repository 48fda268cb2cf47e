//! Before the loop: a step left open by a crash is closed, a pending run starts, its directory
//! is made, it gets its name, and its worktree.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loop_core::config::{NamingMode, WorktreeChoice};
use loop_core::event::{
    ExitReason, FailureCause, NameSource, Paid, Provider, RunNamed, WorktreeCreated,
    WorktreeProviderSelected,
};
use loop_core::{Command, RunStatus, naming};

use super::{Driver, DriverEnd, StepEnd, new_step_id};
use crate::agent::{Agent, CallEnd};
use crate::agent_call::{Ask, CallLog};
use crate::error::RuntimeError;
use crate::process::Limits;
use crate::run_context::AFTER_RESULT;
use crate::scratch::Scratch;
use crate::worktree::WorktreeProvider;

/// The longest a naming call may take.
const NAMING_TIMEOUT: Duration = Duration::from_secs(60);

impl Driver {
    /// Recovers an open step, starts a pending run, makes its directory, names it and prepares
    /// its worktree; `Some` when the run ends (or never was running) before the loop.
    pub(super) async fn begin(&mut self) -> StepEnd {
        let state = self.services.journal.state(self.run.run_id).await?;
        if state.open_step().is_some() {
            let at_ms = self.now();
            self.record(vec![Command::Recover { at_ms }]).await?;
        }
        match state.status() {
            Some(RunStatus::Pending) => {
                self.record(vec![Command::Start]).await?;
            }
            Some(RunStatus::Running) => {}
            _ => return Ok(Some(DriverEnd::Settled)),
        }
        // A run by URL: this node's checkout of the repository, cloned or fetched, before
        // anything is written into it; in a cluster, the run's fence on the remote seized
        // before any effect there.
        if let Some(url) = self.run.repo_url.clone() {
            let base = self.run.config.base_branch.clone();
            let fetched =
                crate::repos::checkout(&self.services.data_dir, &url, base.as_deref()).await;
            if let Err(error) = fetched {
                let reason = format!("cannot fetch the repository {url}: {error}");
                let end = self.fail(ExitReason::Failed, reason, Some(FailureCause::Setup));
                return end.await.map(Some);
            }
            self.take_fence().await?;
        }
        // The run directory lives in the workspace: keep it out of the person's git (and out of
        // an agent's `git add -A` in a run without a worktree). A failure here costs nothing
        // but a noisier `git status`.
        let log_dir = &self.run.config.log_dir;
        if Path::new(log_dir).is_relative() {
            let pattern = format!("/{}/", log_dir.trim_matches('/'));
            let workspace = PathBuf::from(&self.run.created.workspace_root);
            if let Err(error) = crate::git::exclude(&workspace, &pattern).await {
                tracing::warn!(%error, "cannot add the run logs to .git/info/exclude");
            }
        }
        if let Err(error) = self.run.files.create() {
            let reason = format!(
                "cannot create the run directory {}: {error}",
                self.run.files.dir().display()
            );
            let end = self.fail(ExitReason::Failed, reason, Some(FailureCause::Setup));
            return end.await.map(Some);
        }
        self.name_run().await?;
        match self.run.worktree.clone() {
            Some(worktree) => {
                let path = PathBuf::from(&worktree.path);
                // In a cluster another node may have moved the branch since this one last
                // drove the run; outside one, only a missing worktree is made again.
                let clustered = self.services.journal.node_id().is_some();
                if self.run.repo_url.is_some() && (clustered || !path.is_dir()) {
                    // Another node made this run's worktree, or may have moved its branch: make
                    // it again here, from the run branch as the remote has it.
                    let checkout = PathBuf::from(&self.run.created.workspace_root);
                    let restored = crate::repos::restore_worktree(
                        &checkout,
                        &path,
                        &worktree.run_branch,
                        &worktree.base_branch,
                        &self.run.run_id.to_string(),
                    )
                    .await;
                    if let Err(error) = restored {
                        let reason = format!("cannot make the run's worktree again: {error}");
                        let end = self.fail(ExitReason::Failed, reason, Some(FailureCause::Setup));
                        return end.await.map(Some);
                    }
                    tracing::info!(run_id = %self.run.run_id, path = %path.display(), "made the run's worktree again from its pushed branch");
                }
                self.run.workdir = path;
                Ok(None)
            }
            None => self.prepare_worktree().await,
        }
    }

    /// `run_naming_mode=haiku`: a short call of the run's agent proposes a name before the
    /// branch is made from it. Any failure keeps the spec slug, recorded as the source. Only
    /// the claude and codex adapters are asked: a generic command agent is not a namer.
    async fn name_run(&mut self) -> Result<(), RuntimeError> {
        let config = &self.run.config;
        let wanted = self.run.created.name_source == NameSource::SpecSlug
            && config.naming_mode == NamingMode::Haiku
            && config.agent.answers_prompts();
        if !wanted || self.named {
            return Ok(());
        }
        let (proposed, paid) = match self.services.agent(config.agent.as_str()) {
            Some(agent) => self.ask_for_name(agent).await,
            None => (None, Paid::default()),
        };
        let proposed = match proposed {
            Some(name) => Some(
                self.services
                    .free_name(&name, Some(self.run.run_id))
                    .await?,
            ),
            None => None,
        };
        let named = match proposed {
            Some(name) => RunNamed {
                name,
                name_source: NameSource::Haiku,
                paid,
            },
            None => RunNamed {
                name: self.run.created.name.clone(),
                name_source: NameSource::SpecSlug,
                paid,
            },
        };
        self.run.created.name.clone_from(&named.name);
        self.named = true;
        self.record(vec![Command::Name(named)]).await?;
        Ok(())
    }

    /// The name the agent proposes, if it proposes a usable one, and what the call cost.
    async fn ask_for_name(&self, agent: Arc<dyn Agent>) -> (Option<String>, Paid) {
        let spec = self
            .run
            .read_agent_file(&self.run.created.spec_path)
            .await
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        // A naming call is an agent call too: it goes to the account the run's next call
        // would, with its credentials, and while the run's accounts are held the run keeps
        // its spec slug rather than wait for a name.
        if !self.accounts.ready(&self.cancel).await {
            return (None, Paid::default());
        }
        let account = match self.accounts.for_extra_call(
            self.run.run_id,
            &self.run.config,
            &self.run.config.naming_model,
            self.now(),
        ) {
            Ok(account) => account,
            Err(hold) => {
                tracing::info!(run_id = %self.run.run_id, "no naming call: {hold}");
                return (None, Paid::default());
            }
        };
        let mut env = self.run.env(0, "naming");
        env.extend(self.accounts.env_of(&account));
        let header = loop_core::spec::SpecHeader::parse(&spec);
        let prompt = naming::naming_prompt(header.title.as_deref(), &spec);
        let prompt_file = self.run.files.path("naming-prompt.txt");
        if std::fs::write(&prompt_file, &prompt).is_err() {
            return (None, Paid::default());
        }
        let Ok(mut log) = CallLog::open(&self.services, &self.run, new_step_id(), "naming.log")
        else {
            return (None, Paid::default());
        };
        let timeout = self
            .run
            .config
            .agent_timeout
            .map_or(NAMING_TIMEOUT, |timeout| timeout.min(NAMING_TIMEOUT));
        // The run has no worktree yet (its branch is named after the run), and the naming call
        // needs nothing but its prompt: it runs in an empty directory, never in the person's
        // checkout.
        let Ok(scratch) = Scratch::empty(
            &self.services.data_dir,
            &format!("naming-{}", self.run.run_id),
        ) else {
            return (None, Paid::default());
        };
        let ask = Ask {
            prompt: &prompt,
            prompt_file: &prompt_file,
            model: &self.run.config.naming_model,
            env: &env,
            limits: Limits {
                timeout: Some(timeout),
                after_done: Some(AFTER_RESULT),
                ..Limits::default()
            },
            session: None,
            cwd: Some(scratch.path()),
        };
        let reply = log
            .call(&self.services, &self.run, agent.as_ref(), ask, &self.cancel)
            .await;
        scratch.remove().await;
        let _ = log.close(&self.run, "naming_");
        match reply {
            Ok(reply) if reply.end == CallEnd::Success => {
                (naming::proposed_name(&reply.answer), reply.paid())
            }
            Ok(reply) => (None, reply.paid()),
            Err(_) => (None, Paid::default()),
        }
    }

    async fn prepare_worktree(&mut self) -> StepEnd {
        let setup_failed = |reason: String| (ExitReason::Failed, reason, Some(FailureCause::Setup));
        let Some(provider) = self.choose_provider().await else {
            let reason = format!(
                "worktree_provider={} is not available: install it, or use --no-worktree \
                 (worktree_provider=none) to work in the workspace itself",
                self.run.config.worktree_provider
            );
            let (exit, reason, cause) = setup_failed(reason);
            return self.fail(exit, reason, cause).await.map(Some);
        };
        let root = PathBuf::from(&self.run.created.workspace_root);
        // A run by URL starts from the remote's branch, fetched just now, with plain git
        // worktrees: its path must be one every node can compute again.
        let (provider, config) = match &self.run.repo_url {
            Some(_) => {
                let mut config = self.run.config.clone();
                config.base_branch = config.base_branch.map(|base| format!("origin/{base}"));
                let git = self
                    .services
                    .worktree_provider(&Provider::Git)
                    .unwrap_or(provider);
                (git, config)
            }
            None => (provider, self.run.config.clone()),
        };
        let held = match &self.run.repo_url {
            Some(_) => Some(crate::repos::hold(&root).await),
            None => None,
        };
        let prepared = provider
            .prepare(&root, self.run.run_id, &self.run.created.name, &config)
            .await;
        drop(held);
        let workspace = match prepared {
            Ok(workspace) => workspace,
            Err(error) => {
                let (exit, reason, cause) =
                    setup_failed(format!("cannot prepare the worktree: {error}"));
                return self.fail(exit, reason, cause).await.map(Some);
            }
        };
        self.run.workdir.clone_from(&workspace.path);
        bring_inputs(
            &self.run.created,
            &self.run.config.context_files,
            &root,
            &self.run.workdir,
        );
        let created = WorktreeCreated {
            provider: workspace.provider.clone(),
            path: workspace.path.to_string_lossy().into_owned(),
            base_branch: workspace.base_branch,
            run_branch: workspace.run_branch,
            reused: workspace.reused,
        };
        self.run.worktree = Some(created.clone());
        self.record(vec![
            Command::SelectWorktreeProvider(WorktreeProviderSelected {
                provider: workspace.provider,
            }),
            Command::CreateWorktree(created),
        ])
        .await?;
        // The branch's name is taken on the remote at once, before another node picks it.
        self.push_run_branch().await?;
        Ok(None)
    }

    /// The configured provider; for `auto`, Worktrunk when it answers, else git.
    async fn choose_provider(&self) -> Option<Arc<dyn WorktreeProvider>> {
        let config = &self.run.config;
        match config.worktree_provider {
            WorktreeChoice::Auto => {
                if let Some(worktrunk) = self.services.worktree_provider(&Provider::Worktrunk)
                    && worktrunk.available(config).await
                {
                    return Some(worktrunk);
                }
                self.services.worktree_provider(&Provider::Git)
            }
            choice => {
                let provider = self
                    .services
                    .worktree_provider(&Provider::parse(choice.as_str()))?;
                provider.available(config).await.then_some(provider)
            }
        }
    }
}

/// Spec, plan and context files that the new worktree lacks (not committed yet) are copied in,
/// so the agent edits the run branch's copies.
fn bring_inputs(
    created: &loop_core::event::RunCreated,
    context_files: &[String],
    root: &Path,
    workdir: &Path,
) {
    if workdir == root {
        return;
    }
    let inputs = [created.spec_path.as_str(), created.plan_path.as_str()]
        .into_iter()
        .chain(context_files.iter().map(String::as_str));
    for input in inputs {
        let relative = Path::new(input);
        let relative = relative.strip_prefix(root).unwrap_or(relative);
        let (from, to) = (root.join(relative), workdir.join(relative));
        if from.is_file() && !to.exists() {
            if let Some(parent) = to.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::copy(&from, &to);
        }
    }
}
