//! The state of one run, as the fold of its events.
//!
//! [`RunState::apply`] is the single place that knows which event may follow which: it refuses an
//! event that is illegal where it stands, so a corrupted or hand-edited log is caught on replay,
//! and [`crate::decide`] checks the events it proposes with the same rules.

use std::collections::HashSet;

use crate::error::DomainError;
use crate::event::{
    ChangesRequested, Event, EventRecord, Phase, ReviewComment, RunCreated, StepFinished,
    StepStatus, WorktreeCreated,
};
use crate::ids::{RunId, StepId, Version};
pub use crate::status::RunStatus;

impl Phase {
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Implementation => "implementation",
            Phase::Review => "review",
            Phase::Verification => "verification",
            Phase::Watchdog => "watchdog",
            Phase::Merge => "merge",
            Phase::Measurement => "measurement",
            Phase::Baseline => "baseline",
        }
    }
}

impl StepStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            StepStatus::Queued => "QUEUED",
            StepStatus::InProgress => "IN_PROGRESS",
            StepStatus::Succeeded => "SUCCEEDED",
            StepStatus::Failed => "FAILED",
            StepStatus::Canceled => "CANCELED",
            StepStatus::Interrupted => "INTERRUPTED",
        }
    }
}

/// The step that has started and not finished. A run has at most one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenStep {
    pub step_id: StepId,
    pub phase: Phase,
    pub iteration: u32,
    pub started_ms: i64,
}

/// Everything the domain needs to decide what may happen next to a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunState {
    run_id: Option<RunId>,
    version: Version,
    status: Option<RunStatus>,
    created: Option<RunCreated>,
    open_step: Option<OpenStep>,
    started_steps: HashSet<StepId>,
    postmortem_running: bool,
    /// A pause was asked for once the current step ends ([`crate::event::RunPauseRequested`]);
    /// cleared when the run stops running.
    pause_requested: bool,
    worktree: Option<WorktreeCreated>,
    /// The cluster node whose claim is the latest, if any node claimed the run.
    claimed_by: Option<String>,
    /// Review comments made since the run last went back to work, in order.
    pending_comments: Vec<ReviewComment>,
    /// The version of that claim's `RUN_CLAIMED`: what the fences of the run's effects name.
    claimed_at: Option<Version>,
    last_ts_ms: i64,
}

impl RunState {
    /// The state of a run that has no events.
    pub fn new() -> RunState {
        RunState::default()
    }

    /// Folds a run's events from the first. Fails at the first event that may not follow.
    pub fn fold<'a>(
        records: impl IntoIterator<Item = &'a EventRecord>,
    ) -> Result<RunState, DomainError> {
        let mut state = RunState::new();
        for record in records {
            state.apply(record)?;
        }
        Ok(state)
    }

    /// Applies the next event of this run.
    pub fn apply(&mut self, record: &EventRecord) -> Result<(), DomainError> {
        if let Some(expected) = self.run_id
            && expected != record.run_id
        {
            return Err(DomainError::WrongRun {
                expected,
                got: record.run_id,
            });
        }
        if record.version != self.version.next() {
            return Err(DomainError::VersionGap {
                current: self.version,
                got: record.version,
            });
        }
        self.transition(&record.event, record.ts_ms)?;
        if matches!(record.event, Event::RunClaimed(_)) {
            self.claimed_at = Some(record.version);
        }
        self.run_id = Some(record.run_id);
        self.version = record.version;
        Ok(())
    }

    pub fn run_id(&self) -> Option<RunId> {
        self.run_id
    }

    /// The run's version: how many events it has.
    pub fn version(&self) -> Version {
        self.version
    }

    /// `None` until the run is created.
    pub fn status(&self) -> Option<RunStatus> {
        self.status
    }

    pub fn created(&self) -> Option<&RunCreated> {
        self.created.as_ref()
    }

    pub fn open_step(&self) -> Option<&OpenStep> {
        self.open_step.as_ref()
    }

    pub fn worktree(&self) -> Option<&WorktreeCreated> {
        self.worktree.as_ref()
    }

    /// The node of the run's latest claim ([`crate::event::RunClaimed`]), if any.
    pub fn claimed_by(&self) -> Option<&str> {
        self.claimed_by.as_deref()
    }

    /// The version at which the run's latest claim was recorded, while it holds.
    pub fn claimed_at(&self) -> Option<Version> {
        self.claimed_at
    }

    pub fn postmortem_running(&self) -> bool {
        self.postmortem_running
    }

    /// The review comments a request for changes would carry: those made since the run last
    /// went back to work.
    pub fn pending_comments(&self) -> &[ReviewComment] {
        &self.pending_comments
    }

    /// Whether the run is to pause before its next step.
    pub fn pause_requested(&self) -> bool {
        self.pause_requested
    }

    /// The time of the last event applied.
    pub fn last_ts_ms(&self) -> i64 {
        self.last_ts_ms
    }

    /// Checks that `event` may come next and, when it may, applies it.
    pub(crate) fn transition(&mut self, event: &Event, ts_ms: i64) -> Result<(), DomainError> {
        self.check(event)?;
        self.last_ts_ms = ts_ms;
        if releases_claim(event) {
            self.claimed_by = None;
            self.claimed_at = None;
        }
        match event {
            Event::RunCreated(created) => {
                self.status = Some(RunStatus::Pending);
                self.created = Some(created.clone());
            }
            Event::RunNamed(named) => {
                if let Some(created) = self.created.as_mut() {
                    created.name.clone_from(&named.name);
                    created.name_source = named.name_source;
                }
            }
            Event::RunClaimed(claimed) => self.claimed_by = Some(claimed.node_id.clone()),
            Event::RunStarted(_) | Event::RunResumed(_) => self.status = Some(RunStatus::Running),
            Event::RunPaused(_) => {
                self.status = Some(RunStatus::Paused);
                self.pause_requested = false;
            }
            Event::RunPauseRequested(_) => self.pause_requested = true,
            Event::RunRetried(_) => self.status = Some(RunStatus::Pending),
            Event::ChangesRequested(_) => {
                self.status = Some(RunStatus::Pending);
                self.pending_comments.clear();
            }
            Event::ReviewComment(comment) => self.pending_comments.push(comment.clone()),
            Event::RunCompleted(_) => self.status = Some(RunStatus::Completed),
            Event::RunFailed(_) => self.status = Some(RunStatus::Failed),
            Event::RunCanceled(_) => self.status = Some(RunStatus::Canceled),
            Event::WorktreeCreated(worktree) => self.worktree = Some(worktree.clone()),
            Event::WorktreeRemoved(_) => self.worktree = None,
            Event::StepStarted(step) => {
                self.started_steps.insert(step.step_id);
                self.open_step = Some(OpenStep {
                    step_id: step.step_id,
                    phase: step.phase,
                    iteration: step.iteration,
                    started_ms: ts_ms,
                });
            }
            Event::StepFinished(_) => self.open_step = None,
            Event::PostmortemStart(_) => self.postmortem_running = true,
            Event::PostmortemEnd(_) => self.postmortem_running = false,
            Event::WorktreeProviderSelected(_)
            | Event::AgentRetry(_)
            | Event::AgentWaiting(_)
            | Event::VerificationCommand(_)
            | Event::CompletionDetected(_)
            | Event::CompletionRejected(_)
            | Event::WatchdogSignal(_)
            | Event::WatchdogRewrite(_)
            | Event::MergeStarted(_)
            | Event::MergeFinished(_)
            | Event::ArtifactWritten(_)
            | Event::ReviewAction(_)
            | Event::ExperimentBaseline(_)
            | Event::ExperimentMeasured(_)
            | Event::ExperimentDecided(_) => {}
        }
        if self.status != Some(RunStatus::Running) {
            self.pause_requested = false;
        }
        Ok(())
    }

    fn check(&self, event: &Event) -> Result<(), DomainError> {
        use RunStatus::*;

        let Some(status) = self.status else {
            return match event {
                Event::RunCreated(_) => Ok(()),
                other => Err(DomainError::NotCreated {
                    event: other.event_type(),
                }),
            };
        };
        let require = |action: &'static str, allowed: &[RunStatus]| {
            if allowed.contains(&status) {
                Ok(())
            } else {
                Err(DomainError::IllegalInState { action, status })
            }
        };
        let no_open_step = |action: &'static str| match &self.open_step {
            Some(open) => Err(DomainError::StepOpen {
                action,
                open: open.step_id,
            }),
            None => Ok(()),
        };

        match event {
            Event::RunCreated(_) => Err(DomainError::AlreadyCreated {
                run_id: self.run_id.expect("a created run has an id"),
            }),
            Event::RunNamed(_) => require("name", &[Pending, Running, Paused]),
            Event::RunClaimed(_) => require("claim", &[Pending, Running]),
            Event::RunStarted(_) => require("start", &[Pending]),
            Event::RunPaused(_) => {
                require("pause", &[Running])?;
                no_open_step("pause")
            }
            Event::RunPauseRequested(_) => require("pause", &[Running]),
            Event::RunResumed(_) => require("resume", &[Paused]),
            Event::RunCanceled(_) => {
                require("cancel", &[Pending, Running, Paused])?;
                no_open_step("cancel")
            }
            Event::RunRetried(_) => {
                require("retry", &[Failed, Canceled])?;
                if self.postmortem_running {
                    return Err(DomainError::PostmortemRunning);
                }
                Ok(())
            }
            Event::RunCompleted(_) => {
                require("complete", &[Running])?;
                no_open_step("complete")
            }
            Event::RunFailed(_) => {
                require("fail", &[Pending, Running, Paused])?;
                no_open_step("fail")
            }
            Event::WorktreeProviderSelected(_) => require("select a worktree provider", &[Running]),
            Event::WorktreeCreated(_) => require("create a worktree", &[Running]),
            Event::WorktreeRemoved(_) => Ok(()),
            Event::StepStarted(step) => {
                require("start a step", &[Running])?;
                no_open_step("start a step")?;
                if self.started_steps.contains(&step.step_id) {
                    return Err(DomainError::StepAlreadyStarted {
                        step_id: step.step_id,
                    });
                }
                Ok(())
            }
            Event::StepFinished(finished) => self.check_finish(finished),
            Event::AgentRetry(retry) => {
                require("retry an agent call", &[Running])?;
                self.check_open(retry.step_id, None)
            }
            Event::AgentWaiting(wait) => {
                require("wait on a usage limit", &[Running])?;
                match wait.step_id {
                    Some(step_id) => self.check_open(step_id, None),
                    None => Ok(()),
                }
            }
            Event::VerificationCommand(command) => {
                require("record a verification command", &[Running])?;
                self.check_open(command.step_id, Some(Phase::Verification))
            }
            Event::CompletionDetected(_) => require("detect completion", &[Running]),
            Event::CompletionRejected(_) => require("reject completion", &[Running]),
            Event::WatchdogSignal(_) => require("record a watchdog signal", &[Running]),
            Event::WatchdogRewrite(_) => require("rewrite the prompt", &[Running]),
            Event::MergeStarted(merge) => {
                require("start a merge", &[Running])?;
                self.check_open(merge.step_id, Some(Phase::Merge))
            }
            Event::MergeFinished(_) => {
                require("merge", &[Running])?;
                no_open_step("merge")
            }
            Event::ArtifactWritten(_) => Ok(()),
            Event::PostmortemStart(_) => {
                require("start a postmortem of", &[Completed, Failed, Canceled])?;
                if self.postmortem_running {
                    return Err(DomainError::PostmortemRunning);
                }
                Ok(())
            }
            Event::PostmortemEnd(_) => {
                if self.postmortem_running {
                    Ok(())
                } else {
                    Err(DomainError::NoPostmortem)
                }
            }
            Event::ReviewAction(_) => require("review", &[Completed, Failed, Canceled]),
            Event::ExperimentBaseline(measured) => {
                require("record a baseline measurement", &[Running])?;
                self.check_open(measured.step_id, Some(Phase::Baseline))
            }
            Event::ExperimentMeasured(measured) => {
                require("record a measurement", &[Running])?;
                self.check_open(measured.step_id, Some(Phase::Measurement))
            }
            Event::ExperimentDecided(_) => {
                require("decide on a candidate", &[Running])?;
                no_open_step("decide on a candidate")
            }
            Event::ReviewComment(comment) => {
                require("comment on", &[Completed, Failed, Canceled])?;
                check_comment(comment)
            }
            Event::ChangesRequested(requested) => {
                require("request changes of", &[Completed, Failed, Canceled])?;
                if self.postmortem_running {
                    return Err(DomainError::PostmortemRunning);
                }
                if self.worktree.is_none() {
                    return Err(DomainError::NoWorktree);
                }
                check_request(requested)
            }
        }
    }

    fn check_open(&self, step_id: StepId, phase: Option<Phase>) -> Result<(), DomainError> {
        match &self.open_step {
            Some(open) if open.step_id == step_id => match phase {
                Some(phase) if phase != open.phase => Err(DomainError::PhaseMismatch {
                    step_id,
                    open: open.phase.as_str(),
                    given: phase.as_str(),
                }),
                _ => Ok(()),
            },
            Some(open) => Err(DomainError::OtherStepOpen {
                step_id,
                open: open.step_id,
            }),
            None if self.started_steps.contains(&step_id) => {
                Err(DomainError::StepAlreadyFinished { step_id })
            }
            None => Err(DomainError::NoOpenStep { step_id }),
        }
    }

    fn check_finish(&self, finished: &StepFinished) -> Result<(), DomainError> {
        if !finished.status.is_final() {
            return Err(DomainError::NotFinal {
                status: finished.status.as_str(),
            });
        }
        if let Some(cost) = finished.cost_usd
            && !(cost.is_finite() && cost >= 0.0)
        {
            return Err(DomainError::InvalidNumber {
                what: "cost_usd",
                value: cost.to_string(),
            });
        }
        self.check_open(finished.step_id, Some(finished.phase))
    }
}

/// A comment names a file, a line counted from 1, and says something.
fn check_comment(comment: &ReviewComment) -> Result<(), DomainError> {
    match comment.missing() {
        Some(missing) => Err(DomainError::IncompleteComment(missing)),
        None => Ok(()),
    }
}

/// A request for changes asks for something: a comment, or words about the whole change.
fn check_request(requested: &ChangesRequested) -> Result<(), DomainError> {
    let said = requested
        .body
        .as_deref()
        .is_some_and(|body| !body.trim().is_empty());
    if requested.comments.is_empty() && !said {
        return Err(DomainError::NothingRequested);
    }
    requested.comments.iter().try_for_each(check_comment)
}

/// Whether `event` ends the run's latest claim: the run stops being driven (paused, ended, or
/// sent back to the queue), and whichever node drives it next claims it anew.
pub(crate) fn releases_claim(event: &Event) -> bool {
    matches!(
        event,
        Event::RunPaused(_)
            | Event::RunRetried(_)
            | Event::RunCompleted(_)
            | Event::RunFailed(_)
            | Event::RunCanceled(_)
    )
}
