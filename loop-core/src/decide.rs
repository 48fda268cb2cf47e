//! Commands, and the pure decision that turns a command into the events that record it.

use crate::error::DomainError;
use crate::event::FailureCause;
use crate::event::{
    AgentRetry, AgentWaiting, ArtifactWritten, ChangesRequested, CompletionDetected,
    CompletionRejected, Event, ExitReason, ExperimentBaseline, ExperimentDecided,
    ExperimentMeasured, MergeFinished, MergeStarted, PostmortemEnd, PostmortemStart, ReviewAction,
    ReviewComment, RunCanceled, RunClaimed, RunCompleted, RunCreated, RunFailed, RunNamed,
    RunPauseRequested, RunPaused, RunResumed, RunRetried, RunStarted, StepFinished, StepStarted,
    StepStatus, VerificationCommand, WatchdogRewrite, WatchdogSignal, WorktreeCreated,
    WorktreeProviderSelected, WorktreeRemoved,
};
use crate::state::RunState;
use crate::step::{self, Observation};

/// Something asked of a run. Commands that can interrupt a running step carry the time, so the
/// step they close gets its true duration without the domain reading a clock.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Create(RunCreated),
    /// The run's final name.
    Name(RunNamed),
    /// A cluster node takes the run to drive it (see [`RunClaimed`]).
    Claim(RunClaimed),
    /// The scheduler claimed the run.
    Start,
    /// Pause once the current step ends (the agent's call in flight goes on); nothing when a
    /// pause is already asked for.
    RequestPause,
    /// Stop the agent now; the open step, if any, is recorded as CANCELED.
    Pause {
        reason: Option<String>,
        at_ms: i64,
    },
    Resume,
    /// Final: the open step, if any, is recorded as CANCELED.
    Cancel {
        reason: Option<String>,
        at_ms: i64,
    },
    /// A FAILED or CANCELED run goes back to PENDING.
    Retry,
    StartStep(StepStarted),
    FinishStep(StepFinished),
    RecordRetry(AgentRetry),
    RecordWait(AgentWaiting),
    RecordVerification(VerificationCommand),
    DetectCompletion(CompletionDetected),
    RejectCompletion(CompletionRejected),
    RecordWatchdogSignal(WatchdogSignal),
    RewritePrompt(WatchdogRewrite),
    SelectWorktreeProvider(WorktreeProviderSelected),
    CreateWorktree(WorktreeCreated),
    RemoveWorktree(WorktreeRemoved),
    Complete(RunCompleted),
    /// The open step, if any, is recorded as FAILED.
    Fail {
        exit_reason: ExitReason,
        reason: String,
        cause: Option<FailureCause>,
        at_ms: i64,
    },
    /// After a crash: a step that started and never finished is recorded as INTERRUPTED.
    Recover {
        at_ms: i64,
    },
    /// The merge is about to land (recorded before the target moves).
    StartMerge(MergeStarted),
    Merge(MergeFinished),
    RecordArtifact(ArtifactWritten),
    StartPostmortem(PostmortemStart),
    EndPostmortem(PostmortemEnd),
    Review(ReviewAction),
    /// An experiment's starting commit was measured (in its open baseline step).
    RecordBaseline(ExperimentBaseline),
    /// An experiment's candidate and best were measured (in its open measurement step).
    RecordMeasurement(ExperimentMeasured),
    /// An experiment's candidate is kept or discarded.
    DecideExperiment(ExperimentDecided),
    /// A person's comment on a line of a finished run's diff; it waits for a request.
    Comment(ReviewComment),
    /// A finished run goes back to PENDING with the comments made since it last went back to
    /// work (and `body`, words about the whole change), for its next implementation iteration.
    RequestChanges {
        body: Option<String>,
    },
}

/// The events that carry out `command` on a run in `state`, or why it may not happen.
///
/// Every event returned is one that [`RunState::apply`] accepts, in order.
pub fn decide(state: &RunState, command: Command) -> Result<Vec<Event>, DomainError> {
    let (events, at_ms) = match command {
        Command::Create(created) => (vec![created.into()], state.last_ts_ms()),
        Command::Name(named) => single(state, named),
        Command::Claim(claimed) => single(state, claimed),
        Command::Start => single(state, RunStarted {}),
        Command::Pause { reason, at_ms } => (
            closing(
                state,
                StepStatus::Canceled,
                at_ms,
                RunPaused { reason }.into(),
            ),
            at_ms,
        ),
        Command::RequestPause if state.pause_requested() => (Vec::new(), state.last_ts_ms()),
        Command::RequestPause => single(state, RunPauseRequested {}),
        Command::Resume => single(state, RunResumed {}),
        Command::Cancel { reason, at_ms } => (
            closing(
                state,
                StepStatus::Canceled,
                at_ms,
                RunCanceled { reason }.into(),
            ),
            at_ms,
        ),
        Command::Retry => single(state, RunRetried {}),
        Command::StartStep(step) => single(state, step),
        Command::FinishStep(step) => single(state, step),
        Command::RecordRetry(retry) => single(state, retry),
        Command::RecordWait(wait) => single(state, wait),
        Command::RecordVerification(command) => single(state, command),
        Command::DetectCompletion(detected) => single(state, detected),
        Command::RejectCompletion(rejected) => single(state, rejected),
        Command::RecordWatchdogSignal(signal) => single(state, signal),
        Command::RewritePrompt(rewrite) => single(state, rewrite),
        Command::SelectWorktreeProvider(selected) => single(state, selected),
        Command::CreateWorktree(created) => single(state, created),
        Command::RemoveWorktree(removed) => single(state, removed),
        Command::Complete(completed) => single(state, completed),
        Command::Fail {
            exit_reason,
            reason,
            cause,
            at_ms,
        } => {
            let failed = RunFailed {
                exit_reason,
                reason,
                cause,
            };
            (
                closing(state, StepStatus::Failed, at_ms, failed.into()),
                at_ms,
            )
        }
        Command::Recover { at_ms } => (
            interrupted_step(state, StepStatus::Interrupted, at_ms)
                .into_iter()
                .collect(),
            at_ms,
        ),
        Command::StartMerge(merge) => single(state, merge),
        Command::Merge(merge) => single(state, merge),
        Command::RecordArtifact(artifact) => single(state, artifact),
        Command::StartPostmortem(start) => single(state, start),
        Command::EndPostmortem(end) => single(state, end),
        Command::Review(action) => single(state, action),
        Command::RecordBaseline(measured) => single(state, measured),
        Command::RecordMeasurement(measured) => single(state, measured),
        Command::DecideExperiment(decided) => single(state, decided),
        Command::Comment(comment) => single(state, comment),
        Command::RequestChanges { body } => {
            let requested = ChangesRequested {
                comments: state.pending_comments().to_vec(),
                body: body.filter(|body| !body.trim().is_empty()),
            };
            single(state, requested)
        }
    };

    // The same rules that replay enforces: decide proposes, apply disposes.
    let mut scratch = state.clone();
    for event in &events {
        scratch.transition(event, at_ms)?;
    }
    Ok(events)
}

fn single(state: &RunState, event: impl Into<Event>) -> (Vec<Event>, i64) {
    (vec![event.into()], state.last_ts_ms())
}

/// `event`, preceded by the close of the open step when there is one.
fn closing(state: &RunState, status: StepStatus, at_ms: i64, event: Event) -> Vec<Event> {
    let mut events: Vec<Event> = interrupted_step(state, status, at_ms).into_iter().collect();
    events.push(event);
    events
}

fn interrupted_step(state: &RunState, status: StepStatus, at_ms: i64) -> Option<Event> {
    let open = state.open_step()?;
    let observation = Observation {
        duration_ms: u64::try_from(at_ms - open.started_ms).unwrap_or(0),
        ..Observation::default()
    };
    let message = format!("step {}", status.as_str().to_lowercase());
    Some(
        step::finished(
            open.step_id,
            open.phase,
            status,
            Some(message),
            &observation,
            None,
        )
        .into(),
    )
}
