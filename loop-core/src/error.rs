//! Why the domain refuses a command or an event.

use thiserror::Error;

use crate::event::EventType;
use crate::ids::{RunId, StepId, Version};
use crate::status::RunStatus;

/// A command or event that is illegal for the run as it stands. Each variant names the state
/// that made it illegal, so the message can be shown to a person as it is.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("run does not exist yet: {event} cannot come before RUN_CREATED")]
    NotCreated { event: EventType },
    #[error("run {run_id} already exists")]
    AlreadyCreated { run_id: RunId },
    #[error("cannot {action} a run that is {status}")]
    IllegalInState {
        action: &'static str,
        status: RunStatus,
    },
    #[error("cannot {action}: step {open} is still open")]
    StepOpen { action: &'static str, open: StepId },
    #[error("step {step_id} is not open (no step is)")]
    NoOpenStep { step_id: StepId },
    #[error("step {step_id} is not open (step {open} is)")]
    OtherStepOpen { step_id: StepId, open: StepId },
    #[error("step {step_id} already finished")]
    StepAlreadyFinished { step_id: StepId },
    #[error("step {step_id} was already started")]
    StepAlreadyStarted { step_id: StepId },
    #[error("step {step_id} is open as {open}, not {given}")]
    PhaseMismatch {
        step_id: StepId,
        open: &'static str,
        given: &'static str,
    },
    #[error("a step cannot finish as {status}: that is not a final status")]
    NotFinal { status: &'static str },
    #[error("{what} must be a finite number ≥ 0, not {value}")]
    InvalidNumber { what: &'static str, value: String },
    #[error("a review comment needs {0}")]
    IncompleteComment(&'static str),
    #[error("nothing to ask for: comment on a line of the diff, or say what to change")]
    NothingRequested,
    #[error(
        "cannot send the run back to work: it has no worktree (removed by a scrap or gc, or \
         never made)"
    )]
    NoWorktree,
    #[error("postmortem is already running")]
    PostmortemRunning,
    #[error("no postmortem is running")]
    NoPostmortem,
    #[error("event for run {got} applied to run {expected}")]
    WrongRun { expected: RunId, got: RunId },
    #[error("event version {got} does not follow version {current}")]
    VersionGap { current: Version, got: Version },
}
