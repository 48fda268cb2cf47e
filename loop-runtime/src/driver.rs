//! The run driver: one task per running run, doing what the folded log says comes next.
//!
//! The driver keeps no state of its own that the log does not have: it folds the run's events
//! into [`LoopProgress`] and asks [`loop_core::progress::next`] what to do. Every outcome goes
//! back into the log through the journal before the driver acts on it, so a driver started on
//! the same log after a crash continues exactly where the last one stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loop_core::completion::{self, Completion};
use loop_core::config::Config;
use loop_core::event::{
    CompletionDetected, CompletionRejected, ExitReason, MergeFinished, NameSource, Phase,
    RunCompleted, RunCreated, RunNamed, StepFinished, StepStarted, StepStatus, VerificationCommand,
    WatchdogRewrite, WatchdogSignal, WorktreeCreated, WorktreeProviderSelected,
};
use loop_core::layout::step_log_name;
use loop_core::naming;
use loop_core::plan::Plan;
use loop_core::progress::{LoopProgress, Next, next};
use loop_core::projection::{Report, ReportRow};
use loop_core::prompt::{self, ReviewInputs, Verdict};
use loop_core::watchdog::{self, Signal};
use loop_core::{Command, EventRecord, RunId, RunStatus, StepId};
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentReply, AgentRequest, CallEnd};
use crate::artifacts::{RunFiles, sha256_hex};
use crate::error::RuntimeError;
use crate::git;
use crate::merge;
use crate::process::Limits;
use crate::prompting;
use crate::runtime::Shared;
use crate::step_output::StepOutput;
use crate::verify;
use crate::worktree::{Workspace, WorktreeProvider};

/// Iterations with no commit and no plan change before the watchdog calls the loop stalled.
const STALL_AFTER: u32 = 3;
/// Transient agent errors retried within one step before it fails.
const MAX_TRANSIENT_RETRIES: u32 = 8;
/// The longest backoff between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// The longest a naming call may take.
const NAMING_TIMEOUT: Duration = Duration::from_secs(60);
/// A `result` line ends an agent call this long after it arrives, exited or not.
const AFTER_RESULT: Duration = Duration::from_secs(5);

/// How a driver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DriverEnd {
    /// The run is in a terminal state, or paused.
    Settled,
    /// Stopped from outside (pause, cancel, shutdown) before recording the open step.
    Stopped,
}

/// An agent step's result, before it is recorded.
enum AgentStep {
    Stopped,
    Done {
        step_id: StepId,
        outcome: Result<AgentReply, (ExitReason, String)>,
        log_path: PathBuf,
        bytes: u64,
        lines: u64,
    },
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    run_id: RunId,
    cancel: CancellationToken,
    created: RunCreated,
    config: Config,
    files: RunFiles,
    progress: LoopProgress,
    /// The run has had its naming call (or never needs one).
    named: bool,
    /// `report.tsv` as folded so far, and how many of its rows are in the file.
    report: Report,
    report_rows_written: Option<usize>,
    workdir: PathBuf,
}

impl Driver {
    pub(crate) async fn start(
        shared: Arc<Shared>,
        run_id: RunId,
        cancel: CancellationToken,
    ) -> Result<DriverEnd, RuntimeError> {
        let state = shared.journal.state(run_id).await?;
        let created = state
            .created()
            .cloned()
            .ok_or(RuntimeError::UnknownRun(run_id))?;
        let config = Config::from_frozen(&created.config);
        let files = RunFiles::new(&created, run_id, &config, &shared.data_dir);
        let records = shared.journal.read_run(run_id).await?;
        let mut driver = Driver {
            progress: LoopProgress::fold(&records),
            named: records
                .iter()
                .any(|r| matches!(r.event, loop_core::Event::RunNamed(_))),
            report: Report::fold(&records),
            report_rows_written: None,
            workdir: PathBuf::from(&created.workspace_root),
            shared,
            run_id,
            cancel,
            created,
            config,
            files,
        };
        driver.run().await
    }

    /// Appends what `commands` decide; while the log refuses writes (a full disk), waits until
    /// it takes them again (the run shows `store_unavailable` meanwhile).
    async fn record(&mut self, commands: Vec<Command>) -> Result<Vec<EventRecord>, RuntimeError> {
        let records = self
            .shared
            .journal
            .execute_patiently(self.run_id, commands, &self.cancel)
            .await?;
        for record in &records {
            self.progress.apply(record);
            self.report.apply(record);
        }
        self.write_report();
        Ok(records)
    }

    /// Keeps `report.tsv` current: the whole file the first time, then the new rows. A failure
    /// to write it never stops a run (the file is rewritten from the log when the run settles).
    fn write_report(&mut self) {
        let written = match self.report_rows_written {
            None => self
                .files
                .write_projection("report.tsv", &self.report.to_tsv()),
            Some(done) => {
                let rows: String = self.report.rows[done..]
                    .iter()
                    .map(ReportRow::to_line)
                    .collect();
                self.files.append_projection("report.tsv", &rows)
            }
        };
        self.report_rows_written = match written {
            Ok(()) => Some(self.report.rows.len()),
            Err(_) => None,
        };
    }

    fn now(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    async fn fail(
        &mut self,
        exit_reason: ExitReason,
        reason: String,
    ) -> Result<DriverEnd, RuntimeError> {
        let at_ms = self.now();
        self.record(vec![Command::Fail {
            exit_reason,
            reason,
            at_ms,
        }])
        .await?;
        Ok(DriverEnd::Settled)
    }

    async fn run(&mut self) -> Result<DriverEnd, RuntimeError> {
        let state = self.shared.journal.state(self.run_id).await?;
        if state.open_step().is_some() {
            let at_ms = self.now();
            self.record(vec![Command::Recover { at_ms }]).await?;
        }
        match state.status() {
            Some(RunStatus::Pending) => {
                self.record(vec![Command::Start]).await?;
            }
            Some(RunStatus::Running) => {}
            _ => return Ok(DriverEnd::Settled),
        }
        if let Err(error) = self.files.create() {
            return self
                .fail(
                    ExitReason::Failed,
                    format!(
                        "cannot create the run directory {}: {error}",
                        self.files.dir().display()
                    ),
                )
                .await;
        }
        self.name_run(&state).await?;
        match state.worktree() {
            Some(worktree) => self.workdir = PathBuf::from(&worktree.path),
            None => {
                if let Some(end) = self.prepare_worktree().await? {
                    return Ok(end);
                }
            }
        }

        loop {
            if self.cancel.is_cancelled() {
                return Ok(DriverEnd::Stopped);
            }
            if let Some(until) = self.progress.waiting_until_ms
                && until > self.now()
            {
                tokio::select! {
                    () = self.shared.clock.sleep_until(until) => {}
                    () = self.cancel.cancelled() => return Ok(DriverEnd::Stopped),
                }
            }
            let plan = self.read_plan().await;
            let plan_complete = plan.as_ref().is_some_and(Plan::is_complete);
            let step = next(&self.progress, &self.config, plan_complete);
            let end = match step {
                Next::Implement { iteration, attempt } => {
                    self.implement(iteration, attempt, plan.as_ref()).await?
                }
                Next::Review { iteration } => self.review(iteration, plan.as_ref()).await?,
                Next::Verify { iteration } => self.verify(iteration).await?,
                Next::Complete { iteration } => Some(self.complete(iteration).await?),
                Next::RejectCompletion { iteration, reason } => {
                    let rejected = CompletionRejected { iteration, reason };
                    self.record(vec![Command::RejectCompletion(rejected)])
                        .await?;
                    None
                }
                Next::RewritePrompt { signals } => {
                    self.rewrite_prompt(&signals.join(",")).await?;
                    None
                }
                Next::Fail {
                    exit_reason,
                    reason,
                } => Some(self.fail(exit_reason, reason).await?),
            };
            if let Some(end) = end {
                return Ok(end);
            }
        }
    }

    /// `run_naming_mode=haiku`: a short call of the run's agent proposes a name before the
    /// branch is made from it. Any failure keeps the spec slug, recorded as the source. Only
    /// the claude and codex adapters are asked: a generic command agent is not a namer.
    async fn name_run(&mut self, state: &loop_core::RunState) -> Result<(), RuntimeError> {
        let Some(created) = state.created() else {
            return Ok(());
        };
        let agent_name = self.config.text("agent").to_owned();
        let wanted = created.name_source == NameSource::SpecSlug
            && self.config.text("run_naming_mode") == "haiku"
            && matches!(agent_name.as_str(), "claude" | "codex");
        if !wanted || self.named {
            return Ok(());
        }
        let proposed = match self.shared.agent(&agent_name) {
            Some(agent) => self.ask_for_name(agent.as_ref()).await,
            None => None,
        };
        let named = match proposed {
            Some(name) => RunNamed {
                name,
                name_source: NameSource::Haiku,
            },
            None => RunNamed {
                name: created.name.clone(),
                name_source: NameSource::SpecSlug,
            },
        };
        self.created.name.clone_from(&named.name);
        self.named = true;
        self.record(vec![Command::Name(named)]).await?;
        Ok(())
    }

    async fn ask_for_name(&self, agent: &dyn crate::agent::Agent) -> Option<String> {
        let spec_path = self.in_workdir(&self.created.spec_path);
        let spec = tokio::fs::read_to_string(spec_path)
            .await
            .unwrap_or_default();
        let header = loop_core::spec::SpecHeader::parse(&spec);
        let prompt = naming::naming_prompt(header.title.as_deref(), &spec);
        let prompt_file = self.files.path("naming-prompt.txt");
        std::fs::write(&prompt_file, &prompt).ok()?;
        let mut output = StepOutput::create(
            self.run_id,
            new_step_id(),
            &self.files.path("naming.log"),
            self.shared.live.clone(),
        )
        .ok()?;
        let timeout = match self.config.count("claude_timeout_sec") {
            0 => NAMING_TIMEOUT,
            secs => Duration::from_secs(secs).min(NAMING_TIMEOUT),
        };
        let mut env = self.env(0, Phase::Implementation);
        for (key, value) in &mut env {
            if key == "LOOP_PHASE" {
                *value = "naming".to_owned();
            }
        }
        let config = self.config.clone();
        let reply = agent
            .call(AgentRequest {
                prompt: &prompt,
                prompt_file: &prompt_file,
                model: self.config.text("run_naming_model"),
                workdir: &self.workdir,
                env: &env,
                config: &config,
                raw_path: &self.files.path("naming.jsonl"),
                output: &mut output,
                limits: Limits {
                    timeout: Some(timeout),
                    idle: None,
                    after_done: Some(AFTER_RESULT),
                },
                cancel: &self.cancel,
                now_ms: self.now(),
            })
            .await
            .ok()?;
        let _ = output.finish();
        match reply.end {
            CallEnd::Success => naming::proposed_name(&reply.answer),
            _ => None,
        }
    }

    async fn prepare_worktree(&mut self) -> Result<Option<DriverEnd>, RuntimeError> {
        let Some(provider) = self.choose_provider().await else {
            let name = self.config.text("worktree_provider");
            let reason = format!(
                "worktree_provider={name} is not available: install it, or use --no-worktree \
                 (worktree_provider=none) to work in the workspace itself"
            );
            return self.fail(ExitReason::Failed, reason).await.map(Some);
        };
        let root = PathBuf::from(&self.created.workspace_root);
        let prepared = provider
            .prepare(&root, self.run_id, &self.created.name, &self.config)
            .await;
        let workspace: Workspace = match prepared {
            Ok(workspace) => workspace,
            Err(error) => {
                let reason = format!("cannot prepare the worktree: {error}");
                return self.fail(ExitReason::Failed, reason).await.map(Some);
            }
        };
        self.workdir.clone_from(&workspace.path);
        self.bring_inputs(&root);
        self.record(vec![
            Command::SelectWorktreeProvider(WorktreeProviderSelected {
                provider: workspace.provider.clone(),
            }),
            Command::CreateWorktree(WorktreeCreated {
                provider: workspace.provider,
                path: workspace.path.to_string_lossy().into_owned(),
                base_branch: workspace.base_branch,
                run_branch: workspace.run_branch,
                reused: workspace.reused,
            }),
        ])
        .await?;
        Ok(None)
    }

    /// The configured provider; for `auto`, Worktrunk when it answers, else git.
    async fn choose_provider(&self) -> Option<Arc<dyn WorktreeProvider>> {
        match self.config.text("worktree_provider") {
            "auto" => {
                if let Some(worktrunk) = self.shared.worktree_provider("worktrunk")
                    && worktrunk.available(&self.config).await
                {
                    return Some(worktrunk);
                }
                self.shared.worktree_provider("git")
            }
            name => {
                let provider = self.shared.worktree_provider(name)?;
                provider.available(&self.config).await.then_some(provider)
            }
        }
    }

    /// Spec, plan and context files that the new worktree lacks (not committed yet) are copied
    /// in, so the agent edits the run branch's copies.
    fn bring_inputs(&self, root: &Path) {
        if self.workdir == root {
            return;
        }
        let context = self.config.text("context_files").to_owned();
        let inputs = [
            self.created.spec_path.as_str(),
            self.created.plan_path.as_str(),
        ]
        .into_iter()
        .chain(context.split_whitespace());
        for input in inputs {
            let relative = Path::new(input);
            let relative = relative.strip_prefix(root).unwrap_or(relative);
            let (from, to) = (root.join(relative), self.workdir.join(relative));
            if from.is_file() && !to.exists() {
                if let Some(parent) = to.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = std::fs::copy(&from, &to);
            }
        }
    }

    /// A path of the run's request as seen from the working directory.
    fn in_workdir(&self, path: &str) -> PathBuf {
        prompting::in_workdir(&self.created, &self.workdir, path)
    }

    async fn read_plan(&self) -> Option<Plan> {
        let path = self.in_workdir(&self.created.plan_path);
        let text = tokio::fs::read_to_string(path).await.ok()?;
        Some(Plan::parse(&text))
    }

    async fn plan_digest(&self) -> Option<String> {
        let bytes = tokio::fs::read(self.in_workdir(&self.created.plan_path))
            .await
            .ok()?;
        Some(sha256_hex(&bytes))
    }

    fn env(&self, iteration: u32, phase: Phase) -> Vec<(String, String)> {
        vec![
            ("LOOP_RUN_ID".to_owned(), self.run_id.to_string()),
            ("LOOP_ITERATION".to_owned(), iteration.to_string()),
            ("LOOP_PHASE".to_owned(), phase.as_str().to_owned()),
            (
                "LOOP_RUN_DIR".to_owned(),
                self.files.dir().to_string_lossy().into_owned(),
            ),
            (
                "LOOP_SPEC_PATH".to_owned(),
                self.in_workdir(&self.created.spec_path)
                    .to_string_lossy()
                    .into_owned(),
            ),
            (
                "LOOP_PLAN_PATH".to_owned(),
                self.in_workdir(&self.created.plan_path)
                    .to_string_lossy()
                    .into_owned(),
            ),
        ]
    }

    async fn implement(
        &mut self,
        iteration: u32,
        attempt: u32,
        plan: Option<&Plan>,
    ) -> Result<Option<DriverEnd>, RuntimeError> {
        let prompt = prompting::implementation_prompt(&prompting::PromptSources {
            created: &self.created,
            config: &self.config,
            workdir: &self.workdir,
            files: Some(&self.files),
            plan,
            rewrite_signal: self.progress.rewrite_signal.as_deref(),
        })
        .await;
        let model = self.config.text("model").to_owned();
        let step = self
            .agent_step(
                Phase::Implementation,
                iteration,
                attempt,
                &prompt,
                "prompt.txt",
                &model,
            )
            .await?;
        let AgentStep::Done {
            step_id,
            outcome,
            log_path,
            bytes,
            lines,
        } = step
        else {
            return Ok(Some(DriverEnd::Stopped));
        };
        let plan = self.read_plan().await;
        let mut finished = StepFinished {
            step_id,
            phase: Phase::Implementation,
            status: StepStatus::Succeeded,
            exit_code: None,
            duration_ms: 0,
            output_path: Some(log_path.to_string_lossy().into_owned()),
            output_bytes: bytes,
            output_lines: lines,
            tokens: None,
            cost_usd: None,
            tasks_done: plan.as_ref().map(Plan::tasks_done),
            tasks_total: plan.as_ref().map(Plan::tasks_total),
            message: None,
            head_commit: git::head(&self.workdir).await,
            plan_sha256: self.plan_digest().await,
            answer_sha256: None,
        };
        self.set_duration(&mut finished).await?;
        let reply = match outcome {
            Ok(reply) => reply,
            Err((exit_reason, reason)) => {
                finished.status = StepStatus::Failed;
                finished.message = Some(reason.clone());
                let at_ms = self.now();
                self.record(vec![
                    Command::FinishStep(finished),
                    Command::Fail {
                        exit_reason,
                        reason,
                        at_ms,
                    },
                ])
                .await?;
                return Ok(Some(DriverEnd::Settled));
            }
        };
        let normalized = reply
            .answer
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let answer_sha = sha256_hex(normalized.as_bytes());
        finished.exit_code = reply.exit_code;
        finished.tokens = reply.tokens;
        finished.cost_usd = reply.cost_usd;
        finished.answer_sha256 = Some(answer_sha.clone());

        let mode = completion::Mode::parse(self.config.text("completion_mode"))
            .unwrap_or(completion::Mode::Trailing);
        let completion = completion::detect(&reply.answer, mode);
        let moved = finished.head_commit != self.progress.last_head
            || finished.plan_sha256 != self.progress.last_plan_sha256;
        let idle = if moved {
            0
        } else {
            self.progress.idle_iterations + 1
        };
        let mut signals: Vec<(Signal, String)> = Vec::new();
        if !normalized.is_empty()
            && self.progress.last_answer_sha256.as_deref() == Some(&answer_sha)
        {
            signals.push((
                Signal::RepeatedOutput,
                "same answer as the previous iteration".to_owned(),
            ));
        }
        if watchdog::says_no_progress(&reply.answer) {
            signals.push((
                Signal::NoProgress,
                "the answer says nothing was done".to_owned(),
            ));
        }
        if let Completion::Malformed(why) = &completion {
            signals.push((Signal::MalformedToken, why.clone()));
        }
        if idle >= STALL_AFTER {
            signals.push((
                Signal::Stalled,
                format!("{idle} iterations without a commit or plan change"),
            ));
        }

        let mut commands = vec![Command::FinishStep(finished.clone())];
        if completion == Completion::Claimed {
            commands.push(Command::DetectCompletion(CompletionDetected {
                iteration,
                commit: finished.head_commit.clone(),
            }));
        }
        for (signal, detail) in signals {
            commands.push(Command::RecordWatchdogSignal(WatchdogSignal {
                iteration,
                signal: signal.as_str().to_owned(),
                detail,
            }));
        }
        self.record(commands).await?;
        Ok(None)
    }

    async fn review(
        &mut self,
        iteration: u32,
        plan: Option<&Plan>,
    ) -> Result<Option<DriverEnd>, RuntimeError> {
        let changes = match git::head(&self.workdir).await {
            Some(_) => "HEAD~1..HEAD",
            None => "(no git history: read the working tree)",
        };
        let task = plan.and_then(|plan| plan.awaiting_review().last());
        let prompt = prompt::review_prompt(&ReviewInputs {
            spec_path: &self.created.spec_path,
            plan_path: &self.created.plan_path,
            changes,
            task,
        });
        let model = self.config.review_model().to_owned();
        let step = self
            .agent_step(
                Phase::Review,
                iteration,
                self.progress.review_attempts + 1,
                &prompt,
                "review-prompt.txt",
                &model,
            )
            .await?;
        let AgentStep::Done {
            step_id,
            outcome,
            log_path,
            bytes,
            lines,
        } = step
        else {
            return Ok(Some(DriverEnd::Stopped));
        };
        let mut finished = self
            .finished(step_id, Phase::Review, &log_path, bytes, lines)
            .await?;
        match outcome {
            Ok(reply) => {
                finished.exit_code = reply.exit_code;
                finished.tokens = reply.tokens;
                finished.cost_usd = reply.cost_usd;
                match prompt::review_verdict(&reply.answer) {
                    Verdict::Approved => {
                        self.files
                            .remove("review-notes.txt")
                            .map_err(io_error("review-notes.txt"))?;
                    }
                    Verdict::ChangesRequired(changes) => {
                        finished.status = StepStatus::Failed;
                        finished.message = Some("the reviewer asked for changes".to_owned());
                        let artifacts = self
                            .files
                            .write("review_notes", "review-notes.txt", changes.as_bytes())
                            .map_err(io_error("review-notes.txt"))?;
                        self.record(artifacts.into_iter().map(Command::RecordArtifact).collect())
                            .await?;
                    }
                }
            }
            Err((_, reason)) => {
                finished.status = StepStatus::Failed;
                finished.message = Some(format!("review did not run: {reason}"));
            }
        }
        self.record(vec![Command::FinishStep(finished)]).await?;
        Ok(None)
    }

    /// Records the start of a step the runtime runs itself (verification, merge) and opens its
    /// log: the step's id, log file name and path, and its output.
    async fn start_own_step(
        &mut self,
        phase: Phase,
        iteration: u32,
        attempt: u32,
    ) -> Result<(StepId, String, PathBuf, StepOutput), RuntimeError> {
        let step_id = new_step_id();
        let log_name = step_log_name(iteration, phase, attempt);
        let log_path = self.files.path(&log_name);
        self.record(vec![Command::StartStep(StepStarted {
            step_id,
            phase,
            iteration,
            attempt,
            prompt_path: None,
        })])
        .await?;
        let output = StepOutput::create(self.run_id, step_id, &log_path, self.shared.live.clone())
            .map_err(io_error(&log_name))?;
        Ok((step_id, log_name, log_path, output))
    }

    /// `verify_timeout_sec` as a timeout; 0 is none.
    fn verify_timeout(&self) -> Option<Duration> {
        match self.config.count("verify_timeout_sec") {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        }
    }

    async fn verify(&mut self, iteration: u32) -> Result<Option<DriverEnd>, RuntimeError> {
        let attempt = self.progress.verification_attempts + 1;
        let (step_id, log_name, log_path, mut output) = self
            .start_own_step(Phase::Verification, iteration, attempt)
            .await?;
        let timeout = self.verify_timeout();
        let env = self.env(iteration, Phase::Verification);
        let mut failed = Vec::new();
        for command in self.config.verify_cmds() {
            let run = verify::run_command(
                &command,
                &self.workdir,
                &env,
                timeout,
                &mut output,
                &self.cancel,
            )
            .await
            .map_err(io_error("a verification command"))?;
            if self.cancel.is_cancelled() {
                return Ok(Some(DriverEnd::Stopped));
            }
            self.record(vec![Command::RecordVerification(VerificationCommand {
                step_id,
                command: command.clone(),
                exit_code: run.exit_code,
                duration_ms: run.duration.as_millis() as u64,
            })])
            .await?;
            if !run.passed() {
                failed.push(run);
            }
        }
        let (bytes, lines) = output.finish().map_err(io_error(&log_name))?;
        let mut commands: Vec<Command> = self
            .files
            .record("verify_log", &log_name)
            .map_err(io_error(&log_name))?
            .into_iter()
            .map(Command::RecordArtifact)
            .collect();
        let mut finished = self
            .finished(step_id, Phase::Verification, &log_path, bytes, lines)
            .await?;
        if failed.is_empty() {
            self.files
                .remove("runner-notes.txt")
                .map_err(io_error("runner-notes.txt"))?;
        } else {
            finished.status = StepStatus::Failed;
            finished.exit_code = failed[0].exit_code;
            finished.message = Some(format!(
                "failed: {}",
                failed
                    .iter()
                    .map(|run| run.command.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let notes = verify::runner_notes(&failed);
            commands.extend(
                self.files
                    .write("runner_notes", "runner-notes.txt", notes.as_bytes())
                    .map_err(io_error("runner-notes.txt"))?
                    .into_iter()
                    .map(Command::RecordArtifact),
            );
        }
        commands.push(Command::FinishStep(finished));
        self.record(commands).await?;
        Ok(None)
    }

    /// Merges when a target is set, then completes; a merge that does not land fails the run.
    async fn complete(&mut self, iteration: u32) -> Result<DriverEnd, RuntimeError> {
        let target = self.config.text("merge_target_branch").to_owned();
        let strategy = self.config.text("merge_strategy").to_owned();
        let state = self.shared.journal.state(self.run_id).await?;
        let worktree = state.worktree().filter(|w| w.provider != "none").cloned();
        let mut commands = Vec::new();
        if let Some(worktree) = worktree.filter(|_| !target.is_empty() && strategy != "none") {
            match self.merge(iteration, &worktree, &target, &strategy).await? {
                None => return Ok(DriverEnd::Stopped),
                Some(Ok(commit)) => commands.push(Command::Merge(MergeFinished {
                    strategy,
                    commit: Some(commit),
                    conflict: None,
                })),
                Some(Err(failure)) => {
                    let at_ms = self.now();
                    self.record(vec![
                        Command::Merge(MergeFinished {
                            strategy,
                            commit: None,
                            conflict: Some(failure.detail.clone()),
                        }),
                        Command::Fail {
                            exit_reason: ExitReason::Failed,
                            reason: format!("merge_failed:{}: {}", failure.code, failure.detail),
                            at_ms,
                        },
                    ])
                    .await?;
                    return Ok(DriverEnd::Settled);
                }
            }
        }
        commands.push(Command::Complete(RunCompleted {
            exit_reason: ExitReason::CompletePlan,
            completed_iteration: iteration,
        }));
        self.record(commands).await?;
        Ok(DriverEnd::Settled)
    }

    /// The merge step: `None` when stopped from outside.
    async fn merge(
        &mut self,
        iteration: u32,
        worktree: &WorktreeCreated,
        target: &str,
        strategy: &str,
    ) -> Result<Option<Result<String, merge::MergeFailure>>, RuntimeError> {
        let attempt = self.progress.merge_attempts + 1;
        let (step_id, log_name, log_path, mut output) = self
            .start_own_step(Phase::Merge, iteration, attempt)
            .await?;
        let repo = git::run(
            &self.workdir,
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        )
        .await
        .map(|common| {
            PathBuf::from(common)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        })
        .unwrap_or_else(|_| PathBuf::from(&self.created.workspace_root));
        let scratch = self
            .shared
            .data_dir
            .join("merge")
            .join(self.run_id.to_string());
        let message = format!("loop: {} (run {})", self.created.name, self.run_id);
        let verify_cmds = self.config.verify_cmds();
        let env = self.env(iteration, Phase::Merge);
        let timeout = self.verify_timeout();
        let plan = merge::MergePlan {
            repo: &repo,
            run_branch: &worktree.run_branch,
            base_branch: &worktree.base_branch,
            target,
            strategy,
            message: &message,
            verify_cmds: &verify_cmds,
            verify_timeout: timeout,
            env: &env,
            scratch: &scratch,
        };
        let result = merge::merge(&plan, &mut output, &self.cancel).await;
        if self.cancel.is_cancelled() {
            return Ok(None);
        }
        let (bytes, lines) = output.finish().map_err(io_error(&log_name))?;
        let mut finished = self
            .finished(step_id, Phase::Merge, &log_path, bytes, lines)
            .await?;
        if let Err(failure) = &result {
            finished.status = StepStatus::Failed;
            finished.message = Some(format!("merge_failed:{}: {}", failure.code, failure.detail));
        }
        self.record(vec![Command::FinishStep(finished)]).await?;
        Ok(Some(result))
    }

    async fn rewrite_prompt(&mut self, signals: &str) -> Result<(), RuntimeError> {
        let n = self.progress.watchdog_rewrites + 1;
        let before = self.files.path("prompt.txt");
        let previous = tokio::fs::read_to_string(&before).await.unwrap_or_default();
        let name = format!("prompt.rewrite.{n}.txt");
        let after = format!("{previous}{}", watchdog::diagnosis(signals));
        let mut commands: Vec<Command> = self
            .files
            .write("prompt_rewrite", &name, after.as_bytes())
            .map_err(io_error(&name))?
            .into_iter()
            .map(Command::RecordArtifact)
            .collect();
        commands.push(Command::RewritePrompt(WatchdogRewrite {
            signal: signals.to_owned(),
            prompt_before: before.to_string_lossy().into_owned(),
            prompt_after: self.files.path(&name).to_string_lossy().into_owned(),
        }));
        self.record(commands).await?;
        Ok(())
    }

    /// A `STEP_FINISHED` for a step that succeeded, with what the working tree shows now.
    async fn finished(
        &self,
        step_id: StepId,
        phase: Phase,
        log_path: &Path,
        bytes: u64,
        lines: u64,
    ) -> Result<StepFinished, RuntimeError> {
        let plan = self.read_plan().await;
        let mut finished = StepFinished {
            step_id,
            phase,
            status: StepStatus::Succeeded,
            exit_code: None,
            duration_ms: 0,
            output_path: Some(log_path.to_string_lossy().into_owned()),
            output_bytes: bytes,
            output_lines: lines,
            tokens: None,
            cost_usd: None,
            tasks_done: plan.as_ref().map(Plan::tasks_done),
            tasks_total: plan.as_ref().map(Plan::tasks_total),
            message: None,
            head_commit: git::head(&self.workdir).await,
            plan_sha256: None,
            answer_sha256: None,
        };
        self.set_duration(&mut finished).await?;
        Ok(finished)
    }

    async fn set_duration(&self, finished: &mut StepFinished) -> Result<(), RuntimeError> {
        let state = self.shared.journal.state(self.run_id).await?;
        if let Some(open) = state.open_step() {
            finished.duration_ms = u64::try_from(self.now() - open.started_ms).unwrap_or(0);
        }
        Ok(())
    }

    /// Runs one agent step: prompt file, `STEP_STARTED`, the call with its retries and waits.
    async fn agent_step(
        &mut self,
        phase: Phase,
        iteration: u32,
        attempt: u32,
        prompt: &str,
        prompt_name: &str,
        model: &str,
    ) -> Result<AgentStep, RuntimeError> {
        let step_id = new_step_id();
        let log_name = step_log_name(iteration, phase, attempt);
        let log_path = self.files.path(&log_name);
        let raw_name = log_name.replace(".log", ".jsonl");
        let raw_path = self.files.path(&raw_name);
        let mut commands: Vec<Command> = self
            .files
            .write("prompt", prompt_name, prompt.as_bytes())
            .map_err(io_error(prompt_name))?
            .into_iter()
            .map(Command::RecordArtifact)
            .collect();
        commands.push(Command::StartStep(StepStarted {
            step_id,
            phase,
            iteration,
            attempt,
            prompt_path: Some(self.files.path(prompt_name).to_string_lossy().into_owned()),
        }));
        self.record(commands).await?;

        let agent_name = self.config.text("agent").to_owned();
        let Some(agent) = self.shared.agent(&agent_name) else {
            return Ok(AgentStep::Done {
                step_id,
                outcome: Err((
                    ExitReason::ClaudeFailed,
                    format!("no agent adapter named {agent_name}"),
                )),
                log_path,
                bytes: 0,
                lines: 0,
            });
        };
        let mut output =
            StepOutput::create(self.run_id, step_id, &log_path, self.shared.live.clone())
                .map_err(io_error(&log_name))?;
        let seconds = |key: &str| match self.config.count(key) {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        };
        let limits = Limits {
            timeout: seconds("claude_timeout_sec"),
            idle: seconds("agent_idle_timeout_sec"),
            after_done: Some(AFTER_RESULT),
        };
        let env = self.env(iteration, phase);
        let prompt_file = self.files.path(prompt_name);
        let backoff = Duration::from_secs(self.config.count("claude_retry_backoff_sec"));
        let max_failures = self.config.count("claude_retries") as u32;
        let (mut transient, mut failures, mut call) = (0u32, 0u32, 0u32);
        let outcome = loop {
            call += 1;
            let config = self.config.clone();
            let request = AgentRequest {
                prompt,
                prompt_file: &prompt_file,
                model,
                workdir: &self.workdir,
                env: &env,
                config: &config,
                raw_path: &raw_path,
                output: &mut output,
                limits,
                cancel: &self.cancel,
                now_ms: self.now(),
            };
            let reply = agent.call(request).await;
            if self.cancel.is_cancelled() {
                return Ok(AgentStep::Stopped);
            }
            let reply = match reply {
                Ok(reply) => reply,
                Err(error) => AgentReply {
                    // Out of file descriptors, processes or memory: wait for them, as for a
                    // busy API, rather than fail the run.
                    end: if crate::process::is_exhaustion(&error) {
                        CallEnd::Transient {
                            reason: format!("cannot start the agent for now: {error}"),
                        }
                    } else {
                        CallEnd::Failed {
                            reason: format!("cannot start the agent: {error}"),
                        }
                    },
                    answer: String::new(),
                    exit_code: None,
                    process_end: crate::process::Ended::Exited,
                    cost_usd: None,
                    tokens: None,
                    session_id: None,
                },
            };
            let (reason, delay) = match &reply.end {
                CallEnd::Success => break Ok(reply),
                CallEnd::Auth { reason } => break Err((ExitReason::ClaudeFailed, reason.clone())),
                CallEnd::UsageLimit { until_ms, reason } => {
                    if !self.config.flag("usage_limit_wait") {
                        break Err((ExitReason::ClaudeFailed, format!("usage limit: {reason}")));
                    }
                    let wait = loop_core::event::AgentWaiting {
                        step_id: Some(step_id),
                        until_ms: *until_ms,
                        reason: reason.clone(),
                    };
                    self.record(vec![Command::RecordWait(wait)]).await?;
                    tokio::select! {
                        () = self.shared.clock.sleep_until(*until_ms) => {}
                        () = self.cancel.cancelled() => return Ok(AgentStep::Stopped),
                    }
                    continue;
                }
                CallEnd::Transient { reason } => {
                    transient += 1;
                    if transient > MAX_TRANSIENT_RETRIES {
                        break Err((
                            ExitReason::ClaudeFailed,
                            format!(
                                "still failing after {MAX_TRANSIENT_RETRIES} retries: {reason}"
                            ),
                        ));
                    }
                    (
                        reason.clone(),
                        backoff_delay(backoff.max(Duration::from_secs(1)), transient),
                    )
                }
                CallEnd::Failed { reason } => {
                    failures += 1;
                    if failures > max_failures {
                        let reason = if max_failures == 0 {
                            reason.clone()
                        } else {
                            format!(
                                "failed {failures} times (claude_retries={max_failures}): {reason}"
                            )
                        };
                        break Err((ExitReason::ClaudeFailed, reason));
                    }
                    (reason.clone(), backoff_delay(backoff, failures))
                }
            };
            let retry = loop_core::event::AgentRetry {
                step_id,
                attempt: call + 1,
                delay_ms: delay.as_millis() as u64,
                reason,
            };
            self.record(vec![Command::RecordRetry(retry)]).await?;
            let until = self.now() + delay.as_millis() as i64;
            tokio::select! {
                () = self.shared.clock.sleep_until(until) => {}
                () = self.cancel.cancelled() => return Ok(AgentStep::Stopped),
            }
        };
        let (bytes, lines) = output.finish().map_err(io_error(&log_name))?;
        let mut artifacts = Vec::new();
        for (kind, name) in [
            ("log", log_name.clone()),
            ("tail", loop_core::layout::tail_path_of(&log_name)),
            ("raw", raw_name.clone()),
        ] {
            if self.files.path(&name).is_file() {
                artifacts.extend(self.files.record(kind, &name).map_err(io_error(&name))?);
            }
        }
        self.record(artifacts.into_iter().map(Command::RecordArtifact).collect())
            .await?;
        Ok(AgentStep::Done {
            step_id,
            outcome,
            log_path,
            bytes,
            lines,
        })
    }
}

fn backoff_delay(base: Duration, n: u32) -> Duration {
    base.saturating_mul(1 << (n - 1).min(16)).min(MAX_BACKOFF)
}

pub(crate) fn new_step_id() -> StepId {
    StepId::from_uuid(uuid::Uuid::now_v7())
}

fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let what = what.to_owned();
    move |error| RuntimeError::Io {
        what,
        source: error,
    }
}
