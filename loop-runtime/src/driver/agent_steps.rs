//! The steps the agent does: implementation and review, and what each records once its calls
//! are over (`agent_calls.rs` makes them): the step's end, the completion claim and watchdog
//! signals of an implementation, a review's verdict, or the run's failure.

use loop_core::completion::{self, Completion};
use loop_core::event::{CompletionDetected, FailureCause, Phase, StepStatus, WatchdogSignal};
use loop_core::plan::Plan;
use loop_core::prompt::{self, ReviewInputs, Verdict};
use loop_core::step;
use loop_core::watchdog::{self, Evidence};
use loop_core::{Command, StepId};

use super::agent_calls::{AgentDone, Failure, Served, call_report};
use super::{Driver, DriverEnd, StepEnd, io_error};
use crate::agent::AgentReply;
use crate::artifacts::sha256_hex;
use crate::error::RuntimeError;
use crate::prompting;

/// A served answer from an agent that then exited badly: the answer stands (its final event
/// was out), and the step says how the process ended rather than losing it.
fn exit_note(reply: &AgentReply) -> Option<String> {
    match reply.exit_code {
        Some(code) if code != 0 => Some(format!(
            "the agent exited with status {code} after its answer; the answer was kept"
        )),
        _ => None,
    }
}

impl Driver {
    pub(super) async fn implement(
        &mut self,
        iteration: u32,
        attempt: u32,
        plan: Option<&Plan>,
    ) -> StepEnd {
        let prompt = prompting::implementation_prompt(&prompting::PromptSources {
            created: &self.run.created,
            config: &self.run.config,
            files: Some(&self.run.files),
            plan,
            rewrite_signal: self.progress.rewrite_signal.as_ref(),
            changes_requested: self.progress.requested_changes.as_ref(),
        });
        self.implement_with(iteration, attempt, prompt).await
    }

    /// An implementation step with `prompt` (a plan's, or an experiment's).
    pub(super) async fn implement_with(
        &mut self,
        iteration: u32,
        attempt: u32,
        prompt: String,
    ) -> StepEnd {
        // Models are per agent: Claude Code's `model`, Codex's `codex_model`.
        let model = self.run.config.model_for(Phase::Implementation).to_owned();
        let phase = Phase::Implementation;
        let resume = self.progress.resumable_session.clone();
        let step = self
            .agent_step(
                phase,
                iteration,
                attempt,
                &prompt,
                "prompt.txt",
                &model,
                resume,
            )
            .await?;
        let Some(done) = step else {
            return Ok(Some(DriverEnd::Stopped));
        };
        let AgentDone {
            step_id,
            outcome,
            observation,
            artifacts,
        } = done;
        let Served {
            reply,
            calls,
            account,
        } = match outcome {
            Ok(done) => done,
            Err(failure) => {
                return self
                    .fail_step(step_id, phase, &observation, artifacts, failure)
                    .await;
            }
        };
        let digest = sha256_hex(watchdog::normalized(&reply.answer).as_bytes());
        let call = call_report(&reply, calls, Some(digest.clone()), account);
        let finished = step::finished(
            step_id,
            phase,
            StepStatus::Succeeded,
            exit_note(&reply),
            &observation,
            Some(&call),
        );
        let completion = completion::detect(&reply.answer, self.run.config.completion_mode);
        let signals = watchdog::signals(&Evidence {
            answer: &reply.answer,
            answer_digest: &digest,
            previous_digest: self.progress.last_answer_sha256.as_deref(),
            completion: &completion,
            idle_iterations: self.progress.idle_after(
                observation.head_commit.as_deref(),
                observation.plan_sha256.as_deref(),
            ),
        });
        let mut commands = artifacts;
        commands.push(Command::FinishStep(finished));
        if completion == Completion::Claimed {
            commands.push(Command::DetectCompletion(CompletionDetected {
                iteration,
                commit: observation.head_commit.clone(),
            }));
        }
        commands.extend(signals.into_iter().map(|(signal, detail)| {
            Command::RecordWatchdogSignal(WatchdogSignal {
                iteration,
                signal,
                detail,
            })
        }));
        self.record(commands).await?;
        Ok(None)
    }

    pub(super) async fn review(&mut self, iteration: u32, plan: Option<&Plan>) -> StepEnd {
        let changes = match crate::git::head(&self.run.workdir).await {
            Some(_) => "HEAD~1..HEAD",
            None => "(no git history: read the working tree)",
        };
        let prompt = prompt::review_prompt(&ReviewInputs {
            spec_path: &self.run.created.spec_path,
            plan_path: &self.run.created.plan_path,
            changes,
            task: plan.and_then(|plan| plan.awaiting_review().last()),
            changes_requested: self.progress.requested_changes.as_ref(),
        });
        let model = self.run.config.model_for(Phase::Review).to_owned();
        let attempt = self.progress.review_attempts + 1;
        let step = self
            .agent_step(
                Phase::Review,
                iteration,
                attempt,
                &prompt,
                "review-prompt.txt",
                &model,
                None,
            )
            .await?;
        let Some(done) = step else {
            return Ok(Some(DriverEnd::Stopped));
        };
        let (step_id, observation, mut commands) = (done.step_id, done.observation, done.artifacts);
        let (status, message, call) = match done.outcome {
            Ok(Served {
                reply,
                calls,
                account,
            }) => {
                let call = call_report(&reply, calls, None, account);
                let (status, message, notes) = self.take_verdict(&reply.answer).await?;
                commands.extend(notes);
                (status, message, Some(call))
            }
            Err(failure) => (
                StepStatus::Failed,
                Some(format!("review did not run: {}", failure.reason)),
                failure.call,
            ),
        };
        let finished = step::finished(
            step_id,
            Phase::Review,
            status,
            message,
            &observation,
            call.as_ref(),
        );
        commands.push(Command::FinishStep(finished));
        self.record(commands).await?;
        Ok(None)
    }

    /// The reviewer's verdict: approved clears `review-notes.txt`; changes asked for are
    /// written there for the next iteration (and the step fails).
    async fn take_verdict(
        &self,
        answer: &str,
    ) -> Result<(StepStatus, Option<String>, Vec<Command>), RuntimeError> {
        let files = &self.run.files;
        match prompt::review_verdict(answer) {
            Verdict::Approved => {
                files
                    .remove("review-notes.txt")
                    .map_err(io_error("review-notes.txt"))?;
                Ok((StepStatus::Succeeded, None, Vec::new()))
            }
            Verdict::ChangesRequired(changes) => {
                let notes = self
                    .write_file("review_notes", "review-notes.txt", changes.as_bytes())
                    .await?;
                Ok((
                    StepStatus::Failed,
                    Some("the reviewer asked for changes".to_owned()),
                    notes.into_iter().map(Command::RecordArtifact).collect(),
                ))
            }
        }
    }

    /// Records a step the policy failed, and the run's failure with it.
    async fn fail_step(
        &mut self,
        step_id: StepId,
        phase: Phase,
        observation: &step::Observation,
        artifacts: Vec<Command>,
        failure: Failure,
    ) -> StepEnd {
        let message = Some(failure.reason.clone());
        let finished = step::finished(
            step_id,
            phase,
            StepStatus::Failed,
            message,
            observation,
            failure.call.as_ref(),
        );
        let at_ms = self.now();
        let mut commands = artifacts;
        commands.extend([
            Command::FinishStep(finished),
            Command::Fail {
                exit_reason: failure.exit_reason,
                reason: failure.reason,
                cause: Some(FailureCause::Agent {
                    end: failure.end.to_owned(),
                }),
                at_ms,
            },
        ]);
        self.record(commands).await?;
        Ok(Some(DriverEnd::Settled))
    }
}
