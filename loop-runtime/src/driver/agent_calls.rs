//! The calls of one agent step: its prompt file and `STEP_STARTED`, then calls until the
//! end-of-call policy says the answer stands or the step fails (each retry and wait recorded),
//! and the step's log files. What the step then records is `agent_steps.rs`'s.

use std::sync::Arc;

use loop_core::account::{CallKind, Decision};
use loop_core::event::{ExitReason, Phase, StepStarted};
use loop_core::layout::step_log_name;
use loop_core::policy::{AfterCall, CallCounters, after_call};
use loop_core::step::{self, CallReport};
use loop_core::{Command, StepId};

use super::account_gate::CallAccount;
use super::{Driver, new_step_id};
use crate::agent::{Agent, AgentReply, CallEnd, Session};
use crate::agent_call::{Ask, CallLog};
use crate::error::RuntimeError;

/// An agent step whose calls are over, before it is recorded.
pub(super) struct AgentDone {
    pub(super) step_id: StepId,
    /// The accepted reply and the calls made, or why the step failed.
    pub(super) outcome: Result<Served, Failure>,
    /// The working tree and the step's output as the calls left them.
    pub(super) observation: step::Observation,
    /// The step's log files to record, in the same append as the step's end (one commit
    /// instead of two: nothing acts on them in between).
    pub(super) artifacts: Vec<Command>,
}

/// The reply the policy accepted, the calls the step made, and the account of the last.
pub(super) struct Served {
    pub(super) reply: AgentReply,
    pub(super) calls: u32,
    pub(super) account: Option<String>,
}

/// The end-of-call policy failed the step.
pub(super) struct Failure {
    pub(super) exit_reason: ExitReason,
    pub(super) reason: String,
    pub(super) end: &'static str,
    /// The last call, whose cost and figures the failed step records.
    pub(super) call: Option<CallReport>,
}

/// What a step records of its last call: exit code, cost, tokens, and what else the agent
/// said; `calls` counts every call the step made.
pub(super) fn call_report(
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
    /// Runs one agent step: prompt file, `STEP_STARTED`, the calls, the step's files; `None`
    /// when it was stopped from outside. An agent
    /// whose sessions the runtime names gets one, recorded on the step: `resume`, an
    /// interrupted step's session to go on with, or a new one.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn agent_step(
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
