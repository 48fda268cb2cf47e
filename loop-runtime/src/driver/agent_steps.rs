//! The steps the agent does: implementation and review. One agent step is its prompt file,
//! `STEP_STARTED`, calls until the end-of-call policy says the answer stands or the step fails
//! (recording each retry and wait), and the step's log files.

use loop_core::completion::{self, Completion};
use loop_core::event::{
    CompletionDetected, ExitReason, FailureCause, Phase, StepStarted, StepStatus, WatchdogSignal,
};
use loop_core::layout::step_log_name;
use loop_core::plan::Plan;
use loop_core::policy::{AfterCall, CallCounters, after_call};
use loop_core::prompt::{self, ReviewInputs, Verdict};
use loop_core::step::{self, CallReport, OutputFile};
use loop_core::watchdog::{self, Evidence};
use loop_core::{Command, StepId};

use super::{Driver, DriverEnd, StepEnd, io_error, new_step_id};
use crate::agent::{Agent, AgentReply, CallEnd};
use crate::agent_call::{Ask, CallLog};
use crate::artifacts::sha256_hex;
use crate::error::RuntimeError;
use crate::prompting;

/// How an agent step ended, before it is recorded.
enum AgentStep {
    Stopped,
    Done {
        step_id: StepId,
        outcome: Result<AgentReply, Failure>,
        output: OutputFile,
    },
}

/// The end-of-call policy failed the step.
struct Failure {
    exit_reason: ExitReason,
    reason: String,
    end: &'static str,
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
            workdir: &self.run.workdir,
            files: Some(&self.run.files),
            plan,
            rewrite_signal: self.progress.rewrite_signal.as_deref(),
        })
        .await;
        let model = self.run.config.model.clone();
        let phase = Phase::Implementation;
        let step = self
            .agent_step(phase, iteration, attempt, &prompt, "prompt.txt", &model)
            .await?;
        let AgentStep::Done {
            step_id,
            outcome,
            output,
        } = step
        else {
            return Ok(Some(DriverEnd::Stopped));
        };
        let observation = self.observe(Some(output), true).await;
        let reply = match outcome {
            Ok(reply) => reply,
            Err(failure) => return self.fail_step(step_id, phase, &observation, failure).await,
        };
        let digest = sha256_hex(watchdog::normalized(&reply.answer).as_bytes());
        let call = CallReport {
            exit_code: reply.exit_code,
            tokens: reply.tokens,
            cost_usd: reply.cost_usd,
            answer_sha256: Some(digest.clone()),
        };
        let finished = step::finished(
            step_id,
            phase,
            StepStatus::Succeeded,
            None,
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
        let mut commands = vec![Command::FinishStep(finished)];
        if completion == Completion::Claimed {
            commands.push(Command::DetectCompletion(CompletionDetected {
                iteration,
                commit: observation.head_commit.clone(),
            }));
        }
        commands.extend(signals.into_iter().map(|(signal, detail)| {
            Command::RecordWatchdogSignal(WatchdogSignal {
                iteration,
                signal: signal.as_str().to_owned(),
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
        });
        let model = self.run.config.review_model.clone();
        let attempt = self.progress.review_attempts + 1;
        let step = self
            .agent_step(
                Phase::Review,
                iteration,
                attempt,
                &prompt,
                "review-prompt.txt",
                &model,
            )
            .await?;
        let AgentStep::Done {
            step_id,
            outcome,
            output,
        } = step
        else {
            return Ok(Some(DriverEnd::Stopped));
        };
        let observation = self.observe(Some(output), false).await;
        let (status, message, call, mut commands) = match outcome {
            Ok(reply) => {
                let call = CallReport {
                    exit_code: reply.exit_code,
                    tokens: reply.tokens,
                    cost_usd: reply.cost_usd,
                    answer_sha256: None,
                };
                let (status, message, notes) = self.take_verdict(&reply.answer)?;
                (status, message, Some(call), notes)
            }
            Err(failure) => (
                StepStatus::Failed,
                Some(format!("review did not run: {}", failure.reason)),
                None,
                Vec::new(),
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
    fn take_verdict(
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
                let notes = files
                    .write("review_notes", "review-notes.txt", changes.as_bytes())
                    .map_err(io_error("review-notes.txt"))?;
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
        failure: Failure,
    ) -> StepEnd {
        let message = Some(failure.reason.clone());
        let finished = step::finished(
            step_id,
            phase,
            StepStatus::Failed,
            message,
            observation,
            None,
        );
        let at_ms = self.now();
        self.record(vec![
            Command::FinishStep(finished),
            Command::Fail {
                exit_reason: failure.exit_reason,
                reason: failure.reason,
                cause: Some(FailureCause::Agent {
                    end: failure.end.to_owned(),
                }),
                at_ms,
            },
        ])
        .await?;
        Ok(Some(DriverEnd::Settled))
    }

    /// Runs one agent step: prompt file, `STEP_STARTED`, the calls, the step's files.
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
        let mut commands: Vec<Command> = self
            .run
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
            prompt_path: Some(
                self.run
                    .files
                    .path(prompt_name)
                    .to_string_lossy()
                    .into_owned(),
            ),
        }));
        self.record(commands).await?;

        let log_name = step_log_name(iteration, phase, attempt);
        let mut log = CallLog::open(&self.services, &self.run, step_id, &log_name)
            .map_err(io_error(&log_name))?;
        let ask = Ask {
            prompt,
            prompt_file: &self.run.files.path(prompt_name),
            model,
            env: &self.run.env(iteration, phase.as_str()),
            limits: self.run.agent_limits(),
        };
        let Some(outcome) = self.call_until_decided(&mut log, step_id, ask).await? else {
            return Ok(AgentStep::Stopped);
        };
        let (output, artifacts) = log.close(&self.run, "").map_err(io_error(&log_name))?;
        self.record(artifacts.into_iter().map(Command::RecordArtifact).collect())
            .await?;
        Ok(AgentStep::Done {
            step_id,
            outcome,
            output,
        })
    }

    /// Calls the agent until the end-of-call policy accepts an answer or fails the step,
    /// recording each retry and usage-limit wait; `None` when stopped from outside.
    async fn call_until_decided(
        &mut self,
        log: &mut CallLog,
        step_id: StepId,
        ask: Ask<'_>,
    ) -> Result<Option<Result<AgentReply, Failure>>, RuntimeError> {
        let agent_name = self.run.config.agent.clone();
        let policy = self.run.retry_policy();
        let Some(agent) = self.services.agent(&agent_name) else {
            return Ok(Some(Err(Failure {
                exit_reason: policy.fails_as,
                reason: format!("no agent adapter named {agent_name}"),
                end: "failed",
            })));
        };
        let mut counters = CallCounters::default();
        loop {
            let reply = self.call_once(log, agent.as_ref(), ask).await;
            if self.cancel.is_cancelled() {
                return Ok(None);
            }
            let until = match after_call(&reply.end, &mut counters, &policy) {
                AfterCall::Done => return Ok(Some(Ok(reply))),
                AfterCall::Fail {
                    exit_reason,
                    reason,
                } => {
                    let end = reply.end.as_str();
                    return Ok(Some(Err(Failure {
                        exit_reason,
                        reason,
                        end,
                    })));
                }
                AfterCall::Retry { delay, reason } => {
                    let retry = loop_core::event::AgentRetry {
                        step_id,
                        attempt: counters.calls + 1,
                        delay_ms: delay.as_millis() as u64,
                        reason,
                    };
                    self.record(vec![Command::RecordRetry(retry)]).await?;
                    self.now() + delay.as_millis() as i64
                }
                AfterCall::Wait { until_ms, reason } => {
                    let wait = loop_core::event::AgentWaiting {
                        step_id: Some(step_id),
                        until_ms,
                        reason,
                    };
                    self.record(vec![Command::RecordWait(wait)]).await?;
                    until_ms
                }
            };
            tokio::select! {
                () = self.services.clock.sleep_until(until) => {}
                () = self.cancel.cancelled() => return Ok(None),
            }
        }
    }

    /// One call; an agent that cannot be started is a failed call (a transient one when the
    /// machine is out of file descriptors, processes or memory).
    async fn call_once(&self, log: &mut CallLog, agent: &dyn Agent, ask: Ask<'_>) -> AgentReply {
        match log
            .call(&self.services, &self.run, agent, ask, &self.cancel)
            .await
        {
            Ok(reply) => reply,
            Err(error) => {
                let end = if crate::process::is_exhaustion(&error) {
                    CallEnd::Transient {
                        reason: format!("cannot start the agent for now: {error}"),
                    }
                } else {
                    CallEnd::Failed {
                        reason: format!("cannot start the agent: {error}"),
                    }
                };
                AgentReply::ended(end)
            }
        }
    }
}
