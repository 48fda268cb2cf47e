//! The steps the agent does: implementation and review. One agent step is its prompt file,
//! `STEP_STARTED`, calls until the end-of-call policy says the answer stands or the step fails
//! (recording each retry and wait), and the step's log files.

use std::sync::Arc;

use loop_core::account::{CallKind, Decision};
use loop_core::completion::{self, Completion};
use loop_core::event::{
    CompletionDetected, ExitReason, FailureCause, Phase, StepStarted, StepStatus, WatchdogSignal,
};
use loop_core::layout::step_log_name;
use loop_core::plan::Plan;
use loop_core::policy::{AfterCall, CallCounters, after_call};
use loop_core::prompt::{self, ReviewInputs, Verdict};
use loop_core::step::{self, CallReport};
use loop_core::watchdog::{self, Evidence};
use loop_core::{Command, StepId};

use super::account_gate::CallAccount;
use super::{Driver, DriverEnd, StepEnd, io_error, new_step_id};
use crate::agent::{Agent, AgentReply, CallEnd, Session};
use crate::agent_call::{Ask, CallLog};
use crate::artifacts::sha256_hex;
use crate::error::RuntimeError;
use crate::prompting;

/// An agent step whose calls are over, before it is recorded.
struct AgentDone {
    step_id: StepId,
    /// The accepted reply and the calls made, or why the step failed.
    outcome: Result<Served, Failure>,
    /// The working tree and the step's output as the calls left them.
    observation: step::Observation,
    /// The step's log files to record, in the same append as the step's end (one commit
    /// instead of two: nothing acts on them in between).
    artifacts: Vec<Command>,
}

/// The reply the policy accepted, the calls the step made, and the account of the last.
struct Served {
    reply: AgentReply,
    calls: u32,
    account: Option<String>,
}

/// The end-of-call policy failed the step.
struct Failure {
    exit_reason: ExitReason,
    reason: String,
    end: &'static str,
    /// The last call, whose cost and figures the failed step records.
    call: Option<CallReport>,
}

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

/// What a step records of its last call: exit code, cost, tokens, and what else the agent
/// said; `calls` counts every call the step made.
fn call_report(
    reply: &AgentReply,
    calls: u32,
    answer_sha256: Option<String>,
    account: Option<String>,
) -> CallReport {
    let mut agent = reply.figures.detail.clone();
    agent.calls = Some(calls);
    CallReport {
        exit_code: reply.exit_code,
        tokens: reply.figures.tokens,
        cost_usd: reply.figures.cost_usd,
        answer_sha256,
        agent: Some(agent),
        account,
        cost_estimated: reply.figures.cost_estimated,
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

    /// Runs one agent step: prompt file, `STEP_STARTED`, the calls, the step's files; `None`
    /// when it was stopped from outside. An agent
    /// whose sessions the runtime names gets one, recorded on the step: `resume`, an
    /// interrupted step's session to go on with, or a new one.
    #[allow(clippy::too_many_arguments)]
    async fn agent_step(
        &mut self,
        phase: Phase,
        iteration: u32,
        attempt: u32,
        prompt: &str,
        prompt_name: &str,
        model: &str,
        resume: Option<String>,
    ) -> Result<Option<AgentDone>, RuntimeError> {
        let step_id = new_step_id();
        let names_sessions = self
            .services
            .agent(self.run.config.agent.as_str())
            .is_some_and(|agent| agent.resumes());
        let session = names_sessions.then(|| match resume {
            Some(id) => Session::Resume(id),
            None => Session::New(uuid::Uuid::new_v4().to_string()),
        });
        // The account of the step's first call, as the decision before the step cleared it
        // (asked again only if the step comes without one).
        let cleared = match self.cleared.take() {
            Some(account) => account,
            None => {
                let kind = if phase == Phase::Review {
                    CallKind::Review
                } else {
                    CallKind::Iteration
                };
                match self.account_for(kind, None).await? {
                    CallAccount::Call(account) => account,
                    CallAccount::Again | CallAccount::End(_) => return Ok(None),
                }
            }
        };
        // The log names a pool's account on the step; a run of one account names its
        // configured one, as before pools (none for a log's `default`).
        let first_account = if self.run.config.account_pool.is_empty() {
            self.run.config.account.clone()
        } else {
            Some(cleared.clone())
        };
        let mut commands: Vec<Command> = self
            .write_file("prompt", prompt_name, prompt.as_bytes())
            .await?
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
            session_id: session.as_ref().map(|session| session.id().to_owned()),
            resumed: matches!(session, Some(Session::Resume(_))),
            account: first_account.clone(),
        }));
        self.record(commands).await?;

        let log_name = step_log_name(iteration, phase, attempt);
        let mut log = self
            .patiently(&log_name, || {
                CallLog::open(&self.services, &self.run, step_id, &log_name)
            })
            .await?;
        let ask = Ask {
            prompt,
            prompt_file: &self.run.files.path(prompt_name),
            model,
            env: &self.run.env(iteration, phase.as_str()),
            limits: self.run.agent_limits(),
            session: session.as_ref(),
            cwd: None,
        };
        let Some(outcome) = self
            .call_until_decided(&mut log, step_id, ask, cleared)
            .await?
        else {
            return Ok(None);
        };
        // A full disk holds the run here until the log is written (any other error fails it
        // at the close, as before).
        let settled = log.settle(&self.services, &self.run, &self.cancel).await;
        if settled.is_err() && self.cancel.is_cancelled() {
            return Ok(None);
        }
        let (output, artifacts) = self
            .patiently(&log_name, || log.close(&self.run, ""))
            .await?;
        // The plan's digest is the watchdog's evidence, kept for implementation steps.
        let observation = self
            .observe(Some(output), phase == Phase::Implementation)
            .await;
        Ok(Some(AgentDone {
            step_id,
            outcome,
            observation,
            artifacts: artifacts.into_iter().map(Command::RecordArtifact).collect(),
        }))
    }

    /// Calls the agent until the end-of-call policy accepts an answer or fails the step,
    /// recording each retry and usage-limit wait with what its call cost; the accepted reply
    /// and the number of calls made, or `None` when stopped from outside.
    ///
    /// A call that fails to go on with an interrupted session is made again at once in a new
    /// session, charged to no retry budget: the session may be gone (`No conversation found`),
    /// and the work is in the working tree anyway.
    async fn call_until_decided(
        &mut self,
        log: &mut CallLog,
        step_id: StepId,
        ask: Ask<'_>,
        first_account: String,
    ) -> Result<Option<Result<Served, Failure>>, RuntimeError> {
        let agent_name = self.run.config.agent.clone();
        let policy = self.run.retry_policy();
        let Some(agent) = self.services.agent(agent_name.as_str()) else {
            return Ok(Some(Err(Failure {
                exit_reason: policy.fails_as,
                reason: format!("no agent adapter named {agent_name}"),
                end: "failed",
                call: None,
            })));
        };
        // An attempt after a crash, a restart or a pause goes on with the retries its step's
        // earlier attempts spent (the log says how many), not with fresh budgets.
        let mut counters = CallCounters {
            calls: 0,
            ..self.progress.step_retries
        };
        let mut calls = 0;
        let mut session = ask.session.cloned();
        let pool = !self.run.config.account_pool.is_empty();
        let accounts = Arc::clone(&self.accounts);
        // The account of the next call, when already cleared (the step's first, a failover's).
        let mut chosen = Some(first_account);
        let mut current: String;
        loop {
            // Each call goes where the decision says, waiting while its account is held (for
            // a pool, until the earliest reset of its accounts): a retry's call as much as the
            // step's first.
            current = match chosen.take() {
                Some(next) => next,
                None => match self.account_for(CallKind::Again, None).await? {
                    CallAccount::Call(next) => next,
                    CallAccount::Again | CallAccount::End(_) => return Ok(None),
                },
            };
            // What the log names: a pool's account; a run of one account, its configured one.
            let account = if pool {
                Some(current.clone())
            } else {
                self.run.config.account.clone()
            };
            let mut env = ask.env.to_vec();
            env.extend(accounts.env_of(&current));
            let this_call = Ask {
                session: session.as_ref(),
                env: &env,
                ..ask
            };
            let reply = self.call_once(log, agent.as_ref(), this_call).await;
            calls += 1;
            if self.cancel.is_cancelled() {
                return Ok(None);
            }
            if let (Some(Session::Resume(id)), CallEnd::Failed { reason }) = (&session, &reply.end)
            {
                let retry = loop_core::event::AgentRetry {
                    step_id,
                    attempt: calls + 1,
                    delay_ms: 0,
                    reason: format!(
                        "could not go on with session {id} ({reason}); starting afresh"
                    ),
                    count: None,
                    paid: reply.paid(),
                    account: account.clone(),
                    limited_until_ms: None,
                    window: None,
                    next_account: None,
                    budget: None,
                };
                self.record(vec![Command::RecordRetry(retry)]).await?;
                session = Some(Session::New(uuid::Uuid::new_v4().to_string()));
                chosen = Some(current.clone());
                continue;
            }
            // Failover: a usage limit on this account while another of the pool has room goes
            // on there at once, charged to no budget; the log holds the account as by a wait.
            if pool
                && let CallEnd::UsageLimit {
                    until_ms,
                    reason,
                    window,
                } = &reply.end
            {
                let config = &self.run.config;
                let phase = if ask.model == config.model_for(Phase::Review)
                    && config.model_for(Phase::Review) != config.model_for(Phase::Implementation)
                {
                    Phase::Review
                } else {
                    Phase::Implementation
                };
                let decision = accounts.decide(
                    &loop_core::account::Ask {
                        run_id: self.run.run_id,
                        config,
                        kind: CallKind::Again,
                        model: config.model_for(phase),
                        previous: None,
                        now_ms: self.now(),
                    },
                    Some((current.as_str(), *until_ms)),
                );
                if let Decision::Call { account: next, .. } = decision
                    && next != current
                {
                    let retry = loop_core::event::AgentRetry {
                        step_id,
                        attempt: calls + 1,
                        delay_ms: 0,
                        reason: format!("{reason}; account {next} takes the call"),
                        paid: reply.paid(),
                        account: Some(current.clone()),
                        limited_until_ms: Some(*until_ms),
                        window: window.clone(),
                        next_account: Some(next.clone()),
                        budget: None,
                        count: None,
                    };
                    self.record(vec![Command::RecordRetry(retry)]).await?;
                    counters.calls += 1;
                    if session.is_some() {
                        session = Some(Session::New(uuid::Uuid::new_v4().to_string()));
                    }
                    chosen = Some(next);
                    continue;
                }
            }
            let until = match after_call(&reply.end, &mut counters, &policy) {
                AfterCall::Done => {
                    return Ok(Some(Ok(Served {
                        reply,
                        calls,
                        account,
                    })));
                }
                AfterCall::Fail {
                    exit_reason,
                    reason,
                } => {
                    let end = reply.end.as_str();
                    return Ok(Some(Err(Failure {
                        exit_reason,
                        reason,
                        end,
                        call: Some(call_report(&reply, calls, None, account)),
                    })));
                }
                AfterCall::Retry {
                    delay,
                    reason,
                    budget,
                    count,
                } => {
                    let retry = loop_core::event::AgentRetry {
                        step_id,
                        attempt: calls + 1,
                        delay_ms: delay.as_millis() as u64,
                        reason,
                        count: Some(count),
                        paid: reply.paid(),
                        account: account.clone(),
                        limited_until_ms: None,
                        window: None,
                        next_account: None,
                        budget: Some(budget),
                    };
                    self.record(vec![Command::RecordRetry(retry)]).await?;
                    self.now() + delay.as_millis() as i64
                }
                AfterCall::Wait { until_ms, reason } => {
                    let wait = loop_core::event::AgentWaiting {
                        step_id: Some(step_id),
                        until_ms,
                        reason,
                        paid: reply.paid(),
                        account: account.clone(),
                        window: match &reply.end {
                            CallEnd::UsageLimit { window, .. } => window.clone(),
                            _ => None,
                        },
                        pool_wait: None,
                    };
                    self.record(vec![Command::RecordWait(wait)]).await?;
                    // A pool waits for its earliest reset, not this account's: the decision
                    // at the top of the loop does the waiting. A run of one account waits for
                    // the reset here (a pause asked meanwhile is taken), then decides.
                    if pool {
                        if session.is_some() {
                            session = Some(Session::New(uuid::Uuid::new_v4().to_string()));
                        }
                        continue;
                    }
                    until_ms
                }
            };
            // The next call starts a session of its own (a retried call's may be half done).
            if session.is_some() {
                session = Some(Session::New(uuid::Uuid::new_v4().to_string()));
            }
            if !self.sleep_until(until).await {
                return Ok(None);
            }
            // No call of any kind goes to a held account, a retry's included: after a retry's
            // pause as after a limit's reset, the decision at the top of the loop waits until
            // the account may take the call (and after a reset, one probe goes first, this
            // run's or another's). A run that does not wait for limits
            // (`usage_limit_wait=false`) fails at one instead.
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
