//! The steps the runtime runs itself: verification (the project's commands) and the merge on
//! completion.

use loop_core::config::MergeStrategy;
use loop_core::event::{Phase, StepStarted, StepStatus, VerificationCommand, WorktreeCreated};
use loop_core::layout::step_log_name;
use loop_core::step::{self, CallReport, OutputFile};
use loop_core::{Command, StepId};

use super::{Driver, DriverEnd, StepEnd, io_error, new_step_id};
use crate::error::RuntimeError;
use crate::merge::{self, MergeFailure};
use crate::step_output::StepOutput;
use crate::verify;

/// A step the runtime runs itself, started: its id, log name and output.
struct OwnStep {
    step_id: StepId,
    log_name: String,
    output: StepOutput,
}

impl Driver {
    /// Records the start of a step the runtime runs itself and opens its log.
    async fn start_own_step(
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
        let output = StepOutput::create(
            self.run.run_id,
            step_id,
            &self.run.files.path(&log_name),
            self.services.live.clone(),
        )
        .map_err(io_error(&log_name))?;
        Ok(OwnStep {
            step_id,
            log_name,
            output,
        })
    }

    /// Closes an own step's log: the file as written. A full disk holds the run until the log is written; `None` when stopped meanwhile.
    async fn close_own_step(
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
            files
                .record("verify_log", &log_name)
                .map_err(io_error(&log_name))?
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
            let written = files
                .write("runner_notes", "runner-notes.txt", notes.as_bytes())
                .map_err(io_error("runner-notes.txt"))?;
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
        let merge = merge::RunMerge {
            run: &self.run,
            run_branch: &worktree.run_branch,
            base_branch: &worktree.base_branch,
            target,
            strategy,
            iteration,
            scratch: &scratch,
        };
        let result = merge.land(&mut step.output, &self.cancel).await;
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
}
