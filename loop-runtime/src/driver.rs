//! The run driver: one task per running run, doing what the folded log says comes next.
//!
//! The driver keeps no state of its own that the log does not have: it folds the run's events
//! into [`LoopProgress`] and asks [`loop_core::progress::next`] what to do; an agent call's end
//! goes to [`loop_core::policy::after_call`], an implementation answer to
//! [`loop_core::watchdog::signals`] and [`loop_core::completion::detect`]. The driver performs
//! the effect (an agent, a command, a merge) and records what the pure decision said. Every
//! outcome goes into the log through the journal before the driver acts on it, so a driver
//! started on the same log after a crash continues exactly where the last one stopped.
//!
//! The steps live in their own files: [`setup`] (start, name, worktree), [`claim`] (the claim
//! and the remote's fence checked where an effect lands, the run branch pushed),
//! [`agent_steps`]
//! (implementation and review), [`own_steps`] (verification and merge), [`ending`]
//! (completion, the watchdog's rewrite, failure).

mod account_gate;
mod agent_calls;
mod agent_steps;
mod claim;
mod ending;
mod experiment;
mod measure;
mod own_steps;
mod report;
mod setup;

use std::sync::Arc;

use loop_core::event::ArtifactWritten;
use loop_core::experiment::Experiment;
use loop_core::plan::Plan;
use loop_core::progress::{LoopProgress, Next, next};
use loop_core::projection::Report;
use loop_core::step::{Observation, OutputFile};
use loop_core::{Command, Event, EventRecord, RunId, StepId};
use tokio_util::sync::CancellationToken;

use self::account_gate::AccountGate;
use crate::accounts::Accounts;
use crate::error::RuntimeError;
use crate::git;
use crate::run_context::RunContext;
use crate::services::Services;

/// How a driver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DriverEnd {
    /// The run is in a terminal state, or paused.
    Settled,
    /// Stopped from outside (pause, cancel, shutdown) before recording the open step.
    Stopped,
}

/// What a step leaves the loop with: go on (`None`) or stop.
type StepEnd = Result<Option<DriverEnd>, RuntimeError>;

pub(crate) struct Driver {
    services: Arc<Services>,
    /// What the run's account allows before each agent call.
    accounts: Arc<Accounts>,
    run: RunContext,
    cancel: CancellationToken,
    progress: LoopProgress,
    /// Where an experiment stands (empty for a plan's run).
    experiment: Experiment,
    /// `report.tsv`, kept current as events are recorded.
    report: report::ReportFile,
    /// The run has had its naming call (or never needs one).
    named: bool,
    /// The account the decision before the next agent step cleared for its first call.
    cleared: Option<String>,
    /// A run by URL in a cluster: this node's hold on the run's fence on the remote, once
    /// seized ([`crate::repos::fence`]).
    fence: Option<crate::repos::fence::Fence>,
    /// The version of the claim this driver works under (a cluster node's).
    claimed_at: Option<loop_core::Version>,
    /// A wait with no agent call in flight ended because a pause was asked for: the driver
    /// records the pause rather than stopping unrecorded.
    pausing: bool,
    /// A run by URL in experiment mode: the discarded candidates' refs this driver saw land on
    /// the remote ([`Driver::push_kept_refs`]).
    kept_refs_pushed: std::collections::HashSet<String>,
}

impl Driver {
    pub(crate) async fn start(
        services: Arc<Services>,
        accounts: Arc<Accounts>,
        run_id: RunId,
        cancel: CancellationToken,
    ) -> Result<DriverEnd, RuntimeError> {
        let run = services.run_context(run_id).await?;
        let records = services.journal.read_run(run_id).await?;
        let mut driver = Driver {
            progress: LoopProgress::fold(&records),
            experiment: Experiment::fold(&records),
            report: report::ReportFile::new(Report::fold(&records)),
            named: records
                .iter()
                .any(|record| matches!(record.event, Event::RunNamed(_))),
            cleared: None,
            services,
            accounts,
            run,
            cancel,
            fence: None,
            claimed_at: None,
            pausing: false,
            kept_refs_pushed: Default::default(),
        };
        driver.run().await
    }

    /// The loop: ask what comes next, do it, until the run settles or is stopped.
    async fn run(&mut self) -> Result<DriverEnd, RuntimeError> {
        if let Some(end) = self.begin().await? {
            return Ok(end);
        }
        if let Some(settings) = self.run.config.experiment.clone() {
            return self.run_experiment(settings).await;
        }
        loop {
            // A pause asked for while a step ran takes effect between steps.
            if self
                .services
                .journal
                .state(self.run.run_id)
                .await?
                .pause_requested()
            {
                return self.pause_between_steps().await;
            }
            if self.cancel.is_cancelled() || !self.wait_out_usage_limit().await {
                return self.stopped().await;
            }
            let plan = self.run.read_plan().await;
            let plan_complete = plan.as_ref().is_some_and(Plan::is_complete);
            let next = next(&self.progress, &self.run.config, plan_complete);
            // An agent call waits for its account: its limit, budget, reserve and turns.
            match self.wait_for_account(&next).await? {
                AccountGate::Go => {}
                AccountGate::Again => continue,
                AccountGate::End(end) => return Ok(end),
            }
            let end = match next {
                Next::Implement { iteration, attempt } => {
                    self.implement(iteration, attempt, plan.as_ref()).await?
                }
                Next::Review { iteration } => self.review(iteration, plan.as_ref()).await?,
                Next::Verify { iteration } => self.verify(iteration).await?,
                Next::Complete { iteration } => Some(self.complete(iteration).await?),
                Next::RejectCompletion { iteration, reason } => {
                    self.reject(iteration, reason).await?
                }
                Next::RewritePrompt { signals } => self.rewrite_prompt(signals).await?,
                Next::Fail {
                    exit_reason,
                    reason,
                    cause,
                } => Some(self.fail(exit_reason, reason, Some(cause)).await?),
            };
            self.push_run_branch().await?;
            match end {
                Some(DriverEnd::Stopped) => return self.stopped().await,
                Some(end) => return Ok(end),
                None => {}
            }
        }
    }

    /// Sleeps until a usage-limit wait the log records is over; `false` when stopped or asked
    /// to pause first.
    async fn wait_out_usage_limit(&mut self) -> bool {
        // A pool run waits for the earliest reset of its pool, not the one its last call met:
        // the decision before its next call does the waiting.
        if !self.run.config.account_pool.is_empty() {
            return true;
        }
        match self.progress.waiting_until_ms {
            Some(until) if until > self.now() => self.sleep_until(until).await,
            _ => true,
        }
    }

    /// Sleeps until `until_ms` with no agent call in flight; `false` when stopped first, or
    /// when a pause is asked for (then [`Driver::stopped`] records it).
    async fn sleep_until(&mut self, until_ms: i64) -> bool {
        let asked = tokio::select! {
            () = self.services.clock.sleep_until(until_ms) => return true,
            () = self.cancel.cancelled() => return false,
            () = self.pause_asked() => true,
        };
        self.pausing = asked;
        false
    }

    /// Resolves once a pause is asked for (`RUN_PAUSE_REQUESTED`).
    async fn pause_asked(&self) {
        let run_id = self.run.run_id;
        // Listen before looking, so that a request made in between is not missed.
        let mut asked_runs = self.services.pauses.subscribe();
        let asked = |state: Result<loop_core::RunState, RuntimeError>| {
            state.is_ok_and(|state| state.pause_requested())
        };
        if asked(self.services.journal.state(run_id).await) {
            return;
        }
        loop {
            match asked_runs.recv().await {
                Ok(asked_run) => {
                    if asked_run == run_id {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if asked(self.services.journal.state(run_id).await) {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// How a driver that stopped ends: stopped from outside, or paused by itself when a pause
    /// was asked for while it waited.
    async fn stopped(&mut self) -> Result<DriverEnd, RuntimeError> {
        if self.pausing && !self.cancel.is_cancelled() {
            return self.pause_between_steps().await;
        }
        Ok(DriverEnd::Stopped)
    }

    /// Records the pause that was asked for; a step open in a wait (no call in flight) is
    /// recorded as CANCELED and runs again on resume, as it would after the wait.
    ///
    /// The pause goes through the run's fence like a pause from any node (specs/event-log.md,
    /// "Seizing"): the fault suite found a driver's own pause with no entry on a run by URL's
    /// fence, which is the record a later claim and the remote's refusals are judged by.
    async fn pause_between_steps(&mut self) -> Result<DriverEnd, RuntimeError> {
        let pause = Command::Pause {
            reason: Some("asked for, after the current step".to_owned()),
            at_ms: self.now(),
        };
        if self.services.journal.node_id().is_some() {
            self.services
                .release(self.run.run_id, pause, "pause")
                .await?;
        } else {
            // One node, no fence: wait out a log that refuses writes, as every driver append.
            self.record(vec![pause]).await?;
        }
        Ok(DriverEnd::Settled)
    }

    /// Appends what `commands` decide; while the log refuses writes (a full disk), waits until
    /// it takes them again (the run shows `store_unavailable` meanwhile).
    async fn record(&mut self, commands: Vec<Command>) -> Result<Vec<EventRecord>, RuntimeError> {
        let records = self
            .services
            .journal
            .execute_patiently(self.run.run_id, commands, &self.cancel)
            .await?;
        for record in &records {
            self.progress.apply(record);
            self.experiment.apply(record);
            self.report.apply(record);
        }
        self.report.write(&self.run.files);
        Ok(records)
    }

    fn now(&self) -> i64 {
        self.services.clock.now_ms()
    }

    /// Writes the run's file `name` in every location and returns what to record. A full disk
    /// holds the run until the file is written (`storage_full`, as a step's log does:
    /// `specs/daemon.md`, Faults); stopped meanwhile, [`RuntimeError::Shutdown`].
    async fn write_file(
        &self,
        kind: &str,
        name: &str,
        contents: &[u8],
    ) -> Result<Vec<ArtifactWritten>, RuntimeError> {
        self.patiently(name, || self.run.files.write(kind, name, contents))
            .await
    }

    /// [`crate::artifacts::RunFiles::record`], its mirror copies waiting out a full disk.
    async fn record_file(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Vec<ArtifactWritten>, RuntimeError> {
        self.patiently(name, || self.run.files.record(kind, name))
            .await
    }

    /// `write`, tried again while the disk under the run's file `name` is full; any other error
    /// is the run's I/O error about `name`.
    async fn patiently<T>(
        &self,
        name: &str,
        write: impl FnMut() -> std::io::Result<T>,
    ) -> Result<T, RuntimeError> {
        let clock = &self.services.clock;
        let written = self
            .services
            .storage
            .patiently(
                self.run.run_id,
                name,
                || clock.now_ms(),
                &self.cancel,
                write,
            )
            .await;
        match written {
            Err(_) if self.cancel.is_cancelled() => Err(RuntimeError::Shutdown),
            other => other.map_err(io_error(name)),
        }
    }

    /// What the working tree and the step's output show as the open step ends.
    async fn observe(&self, output: Option<OutputFile>, plan_digest: bool) -> Observation {
        let state = self.services.journal.state(self.run.run_id).await;
        let duration_ms = state
            .ok()
            .and_then(|state| state.open_step().map(|open| open.started_ms))
            .map_or(0, |started| {
                u64::try_from(self.now() - started).unwrap_or(0)
            });
        let plan = self.run.read_plan().await;
        Observation {
            duration_ms,
            output,
            plan_sha256: if plan_digest {
                self.run.plan_digest().await
            } else {
                None
            },
            head_commit: git::head(&self.run.workdir).await,
            ..Observation::default()
        }
        .with_plan(plan.as_ref())
    }
}

pub(crate) fn new_step_id() -> StepId {
    StepId::from_uuid(uuid::Uuid::now_v7())
}

/// An I/O error naming the file it was about.
fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let what = what.to_owned();
    move |source| RuntimeError::Io { what, source }
}
