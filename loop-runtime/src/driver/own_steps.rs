//! The steps the runtime runs itself: verification (the project's commands) and the merge on
//! completion, recorded before it lands.

use loop_core::config::MergeStrategy;
use std::path::PathBuf;

use loop_core::event::{
    MergeCode, MergeStarted, Phase, StepStarted, StepStatus, VerificationCommand, WorktreeCreated,
};
use loop_core::layout::step_log_name;
use loop_core::step::{self, CallReport, OutputFile};
use loop_core::{Command, Event, StepId};

use super::{Driver, DriverEnd, StepEnd, io_error, new_step_id};
use crate::error::RuntimeError;
use crate::merge::{self, LandError, MergeFailure};
use crate::step_output::StepOutput;
use crate::verify;

/// Why a merge may not land now: a failure to record as the step's, or an error that stops the
/// driver (another node holds the run, the log refuses).
enum Authorize {
    Refused(MergeFailure),
    Error(RuntimeError),
}

impl From<RuntimeError> for Authorize {
    fn from(error: RuntimeError) -> Authorize {
        Authorize::Error(error)
    }
}

/// A step the runtime runs itself, started: its id, log name and output.
pub(super) struct OwnStep {
    pub(super) step_id: StepId,
    log_name: String,
    pub(super) output: StepOutput,
}

impl Driver {
    /// Records the start of a step the runtime runs itself and opens its log.
    pub(super) async fn start_own_step(
        &mut self,
        phase: Phase,
        iteration: u32,
        attempt: u32,
    ) -> Result<OwnStep, RuntimeError> {
        let step_id = new_step_id();
        let log_name = step_log_name(iteration, phase, attempt);
        self.record(vec![Command::StartStep(StepStarted {
            step_id,
            phase,
            iteration,
            attempt,
            prompt_path: None,
            resumed: Default::default(),
            session_id: Default::default(),
            account: None,
        })])
        .await?;
        let output = self
            .patiently(&log_name, || {
                StepOutput::create(
                    self.run.run_id,
                    step_id,
                    &self.run.files.path(&log_name),
                    self.services.live.clone(),
                )
            })
            .await?;
        Ok(OwnStep {
            step_id,
            log_name,
            output,
        })
    }

    /// Closes an own step's log: the file as written. A full disk holds the run until the log is written; `None` when stopped meanwhile.
    pub(super) async fn close_own_step(
        &self,
        mut step: OwnStep,
    ) -> Result<Option<(StepId, String, OutputFile)>, RuntimeError> {
        let clock = &self.services.clock;
        let finished = self
            .services
            .storage
            .patiently(
                self.run.run_id,
                &step.log_name,
                || clock.now_ms(),
                &self.cancel,
                || step.output.finish(),
            )
            .await;
        if finished.is_err() && self.cancel.is_cancelled() {
            return Ok(None);
        }
        let (bytes, lines) = finished.map_err(io_error(&step.log_name))?;
        let output = OutputFile {
            path: self
                .run
                .files
                .path(&step.log_name)
                .to_string_lossy()
                .into_owned(),
            bytes,
            lines,
        };
        Ok(Some((step.step_id, step.log_name, output)))
    }

    pub(super) async fn verify(&mut self, iteration: u32) -> StepEnd {
        let attempt = self.progress.verification_attempts + 1;
        let mut step = self
            .start_own_step(Phase::Verification, iteration, attempt)
            .await?;
        let env = self.run.env(iteration, Phase::Verification.as_str());
        let mut failed = Vec::new();
        // A command's result is recorded when the next command starts, or with the step's end
        // for the last one: the same events in the same order, one append fewer a step.
        let mut ran: Option<Command> = None;
        for command in self.run.config.verify_cmds.clone() {
            if let Some(result) = ran.take() {
                self.record(vec![result]).await?;
            }
            let timeout = self.run.config.verify_timeout;
            let run = verify::run_command(
                &command,
                &self.run.workdir,
                &env,
                timeout,
                &mut step.output,
                &self.cancel,
            )
            .await
            .map_err(io_error("a verification command"))?;
            if self.cancel.is_cancelled() {
                return Ok(Some(DriverEnd::Stopped));
            }
            ran = Some(Command::RecordVerification(VerificationCommand {
                step_id: step.step_id,
                command: command.clone(),
                exit_code: run.exit_code,
                duration_ms: run.duration.as_millis() as u64,
            }));
            if !run.passed() {
                failed.push(run);
            }
        }
        let Some((step_id, log_name, output)) = self.close_own_step(step).await? else {
            return Ok(Some(DriverEnd::Stopped));
        };
        let files = &self.run.files;
        let mut commands: Vec<Command> = ran.into_iter().collect();
        commands.extend(
            self.record_file("verify_log", &log_name)
                .await?
                .into_iter()
                .map(Command::RecordArtifact),
        );
        let observation = self.observe(Some(output), false).await;
        let finished = if failed.is_empty() {
            files
                .remove("runner-notes.txt")
                .map_err(io_error("runner-notes.txt"))?;
            let status = StepStatus::Succeeded;
            step::finished(
                step_id,
                Phase::Verification,
                status,
                None,
                &observation,
                None,
            )
        } else {
            let notes = verify::runner_notes(&failed);
            let written = self
                .write_file("runner_notes", "runner-notes.txt", notes.as_bytes())
                .await?;
            commands.extend(written.into_iter().map(Command::RecordArtifact));
            let commands_failed: Vec<&str> = failed.iter().map(|r| r.command.as_str()).collect();
            let message = Some(format!("failed: {}", commands_failed.join(", ")));
            let call = CallReport {
                exit_code: failed[0].exit_code,
                ..CallReport::default()
            };
            let status = StepStatus::Failed;
            step::finished(
                step_id,
                Phase::Verification,
                status,
                message,
                &observation,
                Some(&call),
            )
        };
        commands.push(Command::FinishStep(finished));
        self.record(commands).await?;
        Ok(None)
    }

    /// The merge step: `None` when stopped from outside.
    ///
    /// The merge is made and verified first; then, with the claim checked again in the log, it
    /// is recorded (`MERGE_STARTED`, fenced by the claim like every append of the driver) and
    /// only then does the target move (for a run by URL in a cluster, in one atomic push with
    /// the run's fence). A merge an earlier driver recorded as starting may have landed before
    /// that driver stopped: the target itself says so, and the step ends with it.
    pub(super) async fn merge_step(
        &mut self,
        iteration: u32,
        worktree: &WorktreeCreated,
        target: &str,
        strategy: MergeStrategy,
    ) -> Result<Option<Result<String, MergeFailure>>, RuntimeError> {
        let attempt = self.progress.merge_attempts + 1;
        let mut step = self
            .start_own_step(Phase::Merge, iteration, attempt)
            .await?;
        let scratch = self
            .services
            .data_dir
            .join("merge")
            .join(self.run.run_id.to_string());
        // The merge borrows the run's context while the driver records.
        let run = self.run.clone();
        let merge = merge::RunMerge {
            run: &run,
            run_branch: &worktree.run_branch,
            base_branch: &worktree.base_branch,
            target,
            strategy,
            iteration,
            scratch: &scratch,
        };
        let result = match self.landed_earlier(target).await {
            Some(commit) => {
                step.output.line(&format!(
                    "the merge recorded earlier landed: {target} is at {commit}"
                ));
                Ok(commit)
            }
            None => match merge.prepare(&mut step.output, &self.cancel).await {
                Err(failure) => Err(failure),
                Ok(prepared) => {
                    let started = MergeStarted {
                        step_id: step.step_id,
                        target: target.to_owned(),
                        strategy: strategy.as_str().to_owned(),
                        onto: prepared.onto.clone(),
                        commit: prepared.commit.clone(),
                    };
                    match self.authorize_merge(started).await {
                        Ok(true) => {}
                        Ok(false) => {
                            prepared.discard().await;
                            return Ok(None);
                        }
                        Err(Authorize::Refused(failure)) => {
                            prepared.discard().await;
                            return self.end_merge_step(step, Err(failure)).await;
                        }
                        Err(Authorize::Error(error)) => {
                            prepared.discard().await;
                            return Err(error);
                        }
                    }
                    match prepared.land(&mut step.output, self.fence.as_mut()).await {
                        Ok(commit) => Ok(commit),
                        Err(LandError::Failed(failure)) => Err(failure),
                        Err(LandError::Fenced(now)) => {
                            // Lost (the driver stops), or an entry the log never took: then the
                            // merge did not land, and says why.
                            self.fence_moved(now.as_ref()).await?;
                            Err(MergeFailure {
                                code: MergeCode::TargetMoved,
                                detail: "the run's fence on the remote moved under the push; \
                                         merge again (`loopctl merge <run>`)"
                                    .to_owned(),
                            })
                        }
                    }
                }
            },
        };
        self.end_merge_step(step, result).await
    }

    /// Closes the merge step with its result; `None` when the driver was stopped meanwhile.
    async fn end_merge_step(
        &mut self,
        step: OwnStep,
        result: Result<String, MergeFailure>,
    ) -> Result<Option<Result<String, MergeFailure>>, RuntimeError> {
        if self.cancel.is_cancelled() {
            return Ok(None);
        }
        let Some((step_id, _, output)) = self.close_own_step(step).await? else {
            return Ok(None);
        };
        let observation = self.observe(Some(output), false).await;
        let (status, message) = match &result {
            Ok(_) => (StepStatus::Succeeded, None),
            Err(failure) => (
                StepStatus::Failed,
                Some(format!("merge_failed:{}: {}", failure.code, failure.detail)),
            ),
        };
        let finished = step::finished(step_id, Phase::Merge, status, message, &observation, None);
        self.record(vec![Command::FinishStep(finished)]).await?;
        Ok(Some(result))
    }

    /// Right before the target moves: the claim read again from the log, the run's fence
    /// taken (a run by URL in a cluster), and the merge recorded as starting, fenced by the
    /// claim like every append of the driver. `false` when stopped meanwhile.
    async fn authorize_merge(&mut self, started: MergeStarted) -> Result<bool, Authorize> {
        if self.cancel.is_cancelled() {
            return Ok(false);
        }
        self.still_holds().await?;
        if self.run.repo_url.is_some() && self.services.journal.node_id().is_some() {
            self.take_fence().await?;
            if self.fence.is_none() {
                return Err(Authorize::Refused(MergeFailure {
                    code: MergeCode::Git,
                    detail: "the run's fence on the remote cannot be taken (see the node's \
                             log); merge again (`loopctl merge <run>`)"
                        .to_owned(),
                }));
            }
        }
        self.record(vec![Command::StartMerge(started)]).await?;
        Ok(true)
    }

    /// The commit of a merge the log records as started and never finished (an earlier driver
    /// stopped in between) when the target has it: that merge landed.
    async fn landed_earlier(&self, target: &str) -> Option<String> {
        let records = self.services.journal.read_run(self.run.run_id).await.ok()?;
        let started = records
            .iter()
            .rev()
            .find_map(|record| match &record.event {
                Event::MergeStarted(started) => Some(Some(started.clone())),
                Event::MergeFinished(_) => Some(None),
                _ => None,
            })??;
        let repo = crate::git::main_repo(&self.run.workdir)
            .await
            .unwrap_or_else(|_| PathBuf::from(&self.run.created.workspace_root));
        let target = target.strip_prefix("origin/").unwrap_or(target);
        let branch = match self.run.repo_url {
            Some(_) => {
                crate::repos::fetch(&repo).await.ok()?;
                format!("refs/remotes/origin/{target}")
            }
            None => format!("refs/heads/{target}"),
        };
        crate::git::run(
            &repo,
            &["merge-base", "--is-ancestor", &started.commit, &branch],
        )
        .await
        .ok()
        .map(|_| started.commit)
    }
}
