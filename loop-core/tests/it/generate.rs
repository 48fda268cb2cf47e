//! Generated command sequences for one run, and the [`Driver`] that plays them through `decide`
//! and `RunState::apply` the way the runtime and the store do.
//!
//! A generated command is an [`Intent`]: a command with its data, except that the step it names
//! is a [`Target`] ("the open step", "a step that already started", "a new step"). The driver
//! points each intent at the run as it stands when the intent comes up. That keeps most step
//! commands legal, so sequences get deep (steps, a terminal event, a postmortem), while a share
//! of them are not (a finished step, a step never started, the wrong phase, the wrong state).

use std::collections::BTreeMap;

use loop_core::event::{
    AgentRetry, AgentWaiting, ArtifactLocation, ArtifactWritten, CompletionDetected,
    CompletionRejected, ExitReason, MergeFinished, MergeStarted, NameSource, Phase, PostmortemEnd,
    PostmortemStart, PostmortemStatus, ReviewAction, ReviewComment, RunClaimed, RunCompleted,
    RunCreated, RunNamed, SCHEMA, StepFinished, StepStarted, StepStatus, Tokens,
    VerificationCommand, WatchdogRewrite, WatchdogSignal, WorktreeCreated,
    WorktreeProviderSelected, WorktreeRemoved,
};
use loop_core::event::{
    Decision, ExperimentBaseline, ExperimentDecided, ExperimentMeasured, Reason, Samples,
};
use loop_core::{
    Command, DomainError, Event, EventRecord, RunId, RunState, RunStatus, Seq, StepId, decide,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::string::string_regex;

mod strategies;

use strategies::{a_move, intent, run_created};

/// The time of the first command of a generated run (2026-09-21T14:13:20Z).
pub const T0: i64 = 1_790_000_000_000;

/// The run every generated sequence drives.
pub fn run_id() -> RunId {
    RunId::from_parts(T0 as u64, [0x11; 10])
}

/// A run that is not [`run_id`].
pub fn other_run_id() -> RunId {
    RunId::from_parts(T0 as u64, [0x22; 10])
}

/// The step a step command names, resolved against the run when the command comes up.
#[derive(Clone, Debug)]
pub enum Target {
    /// The open step, or the last started one when none is open.
    Open,
    /// Any step that has started, open or finished.
    Started(Index),
    /// A step that never started.
    Fresh,
}

/// A command before its step ids are resolved. Step ids and phases inside the payloads are
/// placeholders that [`Driver::play`] overwrites.
// `Advance` carries a whole step's payloads and is generated as often as the rest: boxing it
// would cost every generator a `Box::new` for no memory anyone waits on.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Intent {
    /// Whatever moves the run on from where it stands: start it, start a step, finish the open
    /// step (with this outcome), resume, run a postmortem, retry. This is what keeps generated
    /// runs going deep; the other intents say exactly which command to try.
    Advance {
        step: StepStarted,
        outcome: StepFinished,
        postmortem: PostmortemStart,
        end: PostmortemEnd,
    },
    Create(RunCreated),
    Name(RunNamed),
    Claim(RunClaimed),
    Start,
    Pause(Option<String>),
    RequestPause,
    Resume,
    Cancel(Option<String>),
    Retry,
    StartStep {
        reuse: Option<Index>,
        step: StepStarted,
    },
    FinishStep {
        target: Target,
        wrong_phase: bool,
        step: StepFinished,
    },
    RecordRetry {
        target: Target,
        retry: AgentRetry,
    },
    RecordWait {
        target: Option<Target>,
        wait: AgentWaiting,
    },
    RecordVerification {
        target: Target,
        command: VerificationCommand,
    },
    DetectCompletion(CompletionDetected),
    RejectCompletion(CompletionRejected),
    RecordWatchdogSignal(WatchdogSignal),
    RewritePrompt(WatchdogRewrite),
    SelectWorktreeProvider(WorktreeProviderSelected),
    CreateWorktree(WorktreeCreated),
    RemoveWorktree(WorktreeRemoved),
    Complete(RunCompleted),
    Fail {
        exit_reason: ExitReason,
        reason: String,
    },
    Recover,
    StartMerge {
        target: Target,
        merge: MergeStarted,
    },
    Merge(MergeFinished),
    RecordArtifact(ArtifactWritten),
    StartPostmortem(PostmortemStart),
    EndPostmortem(PostmortemEnd),
    Review(ReviewAction),
    /// A measurement recorded in the step `target` names (a baseline or a trial's).
    RecordBaseline {
        target: Target,
        measured: ExperimentBaseline,
    },
    RecordMeasurement {
        target: Target,
        measured: ExperimentMeasured,
    },
    DecideExperiment(ExperimentDecided),
    Comment(ReviewComment),
    RequestChanges(Option<String>),
}

/// One generated move: milliseconds since the previous one, how many other runs' events the
/// global log took meanwhile (so `seq` has gaps within a run), and the command.
#[derive(Clone, Debug)]
pub struct Move {
    pub dt_ms: i64,
    pub seq_gap: u64,
    pub intent: Intent,
}

/// Command sequences for one run, up to 40 commands: usually opened by Create and Start, then
/// a body where endings are rare (so steps pile up), then a short tail where endings,
/// postmortems, reviews and retries are common (so terminal states get exercised).
pub fn script() -> impl Strategy<Value = Vec<Move>> {
    (
        proptest::bool::weighted(0.9),
        run_created(),
        proptest::collection::vec(a_move(intent(1, 1)), 0..30),
        proptest::collection::vec(a_move(intent(8, 6)), 0..8),
    )
        .prop_map(|(opened, created, body, tail)| {
            let opening = [Intent::Create(created), Intent::Start]
                .into_iter()
                .map(|intent| Move {
                    dt_ms: 1,
                    seq_gap: 0,
                    intent,
                })
                .filter(|_| opened);
            opening.chain(body).chain(tail).collect()
        })
}

/// A script played out: the driver after its last move.
pub fn history() -> impl Strategy<Value = Driver> {
    script().prop_map(|moves| {
        let mut driver = Driver::new(run_id());
        for step in &moves {
            driver.play(step);
        }
        driver
    })
}

/// A `STEP_FINISHED` payload with only its required fields set; every other field takes its
/// default, as when an older writer's event is read. Going through serde means a field added to
/// the payload (which must be defaulted, see `loop_core::event::payload`) needs no change in the
/// tests that only care about the fields they name.
pub fn finished_payload(step_id: StepId, phase: Phase, status: StepStatus) -> StepFinished {
    serde_json::from_value(serde_json::json!({
        "step_id": step_id,
        "phase": phase,
        "status": status,
    }))
    .expect("STEP_FINISHED needs only step_id, phase and status")
}

fn placeholder_step() -> StepId {
    StepId::from_parts(0, [0; 10])
}

/// Another phase than `phase`.
fn other_phase(phase: Phase) -> Phase {
    match phase {
        Phase::Implementation => Phase::Review,
        Phase::Review => Phase::Verification,
        Phase::Verification => Phase::Watchdog,
        Phase::Watchdog => Phase::Merge,
        Phase::Merge => Phase::Measurement,
        Phase::Measurement => Phase::Baseline,
        Phase::Baseline => Phase::Implementation,
    }
}

/// Which command variant a command is, by name. The match has no wildcard, so a new command
/// variant fails to compile here until the generator and this list know it.
pub fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Create(_) => "Create",
        Command::Name(_) => "Name",
        Command::Claim(_) => "Claim",
        Command::Start => "Start",
        Command::Pause { .. } => "Pause",
        Command::RequestPause => "RequestPause",
        Command::Resume => "Resume",
        Command::Cancel { .. } => "Cancel",
        Command::Retry => "Retry",
        Command::StartStep(_) => "StartStep",
        Command::FinishStep(_) => "FinishStep",
        Command::RecordRetry(_) => "RecordRetry",
        Command::RecordWait(_) => "RecordWait",
        Command::RecordVerification(_) => "RecordVerification",
        Command::DetectCompletion(_) => "DetectCompletion",
        Command::RejectCompletion(_) => "RejectCompletion",
        Command::RecordWatchdogSignal(_) => "RecordWatchdogSignal",
        Command::RewritePrompt(_) => "RewritePrompt",
        Command::SelectWorktreeProvider(_) => "SelectWorktreeProvider",
        Command::CreateWorktree(_) => "CreateWorktree",
        Command::RemoveWorktree(_) => "RemoveWorktree",
        Command::Complete(_) => "Complete",
        Command::Fail { .. } => "Fail",
        Command::Recover { .. } => "Recover",
        Command::StartMerge(_) => "StartMerge",
        Command::Merge(_) => "Merge",
        Command::RecordArtifact(_) => "RecordArtifact",
        Command::StartPostmortem(_) => "StartPostmortem",
        Command::EndPostmortem(_) => "EndPostmortem",
        Command::Review(_) => "Review",
        Command::RecordBaseline(_) => "RecordBaseline",
        Command::RecordMeasurement(_) => "RecordMeasurement",
        Command::DecideExperiment(_) => "DecideExperiment",
        Command::Comment(_) => "Comment",
        Command::RequestChanges { .. } => "RequestChanges",
    }
}

/// The number of `Command` variants.
pub const COMMAND_VARIANTS: usize = 35;

/// What became of one command.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub command: Command,
    /// The number of events it appended, or why `decide` refused it.
    pub result: Result<usize, DomainError>,
}

/// An event that `decide` proposed and `apply` then refused: always a bug.
#[derive(Clone, Debug)]
pub struct Refused {
    pub command: Command,
    pub record: EventRecord,
    pub error: DomainError,
}

/// One run's log as the store keeps it: decide, wrap each event in a record, apply it.
#[derive(Clone, Debug)]
pub struct Driver {
    pub run_id: RunId,
    pub state: RunState,
    pub records: Vec<EventRecord>,
    /// Step ids in the order they started.
    pub started: Vec<StepId>,
    pub outcomes: Vec<Outcome>,
    pub refused: Vec<Refused>,
    /// The time of the latest command.
    pub now: i64,
    next_seq: u64,
    fresh_steps: u64,
}

impl Driver {
    pub fn new(run_id: RunId) -> Driver {
        Driver {
            run_id,
            state: RunState::new(),
            records: Vec::new(),
            started: Vec::new(),
            outcomes: Vec::new(),
            refused: Vec::new(),
            now: T0,
            next_seq: 1,
            fresh_steps: 0,
        }
    }

    /// Plays one generated move: resolves its steps against the run, then submits it.
    pub fn play(&mut self, step: &Move) {
        self.now += step.dt_ms;
        self.next_seq += step.seq_gap;
        let at_ms = self.now;
        let command = match step.intent.clone() {
            Intent::Advance {
                step,
                outcome,
                postmortem,
                end,
            } => self.advance(step, outcome, postmortem, end),
            Intent::Create(created) => Command::Create(created),
            Intent::Name(named) => Command::Name(named),
            Intent::Claim(claimed) => Command::Claim(claimed),
            Intent::Start => Command::Start,
            Intent::Pause(reason) => Command::Pause { reason, at_ms },
            Intent::RequestPause => Command::RequestPause,
            Intent::Resume => Command::Resume,
            Intent::Cancel(reason) => Command::Cancel { reason, at_ms },
            Intent::Retry => Command::Retry,
            Intent::StartStep { reuse, mut step } => {
                step.step_id = match reuse {
                    Some(index) if !self.started.is_empty() => {
                        self.started[index.index(self.started.len())]
                    }
                    _ => self.fresh_step(),
                };
                Command::StartStep(step)
            }
            Intent::FinishStep {
                target,
                wrong_phase,
                mut step,
            } => {
                let (step_id, open_phase) = self.resolve(&target);
                step.step_id = step_id;
                if let Some(phase) = open_phase {
                    step.phase = if wrong_phase {
                        other_phase(phase)
                    } else {
                        phase
                    };
                }
                Command::FinishStep(step)
            }
            Intent::RecordRetry { target, mut retry } => {
                retry.step_id = self.resolve(&target).0;
                Command::RecordRetry(retry)
            }
            Intent::RecordWait { target, mut wait } => {
                wait.step_id = target.map(|target| self.resolve(&target).0);
                Command::RecordWait(wait)
            }
            Intent::RecordVerification {
                target,
                mut command,
            } => {
                command.step_id = self.resolve(&target).0;
                Command::RecordVerification(command)
            }
            Intent::DetectCompletion(detected) => Command::DetectCompletion(detected),
            Intent::RejectCompletion(rejected) => Command::RejectCompletion(rejected),
            Intent::RecordWatchdogSignal(signal) => Command::RecordWatchdogSignal(signal),
            Intent::RewritePrompt(rewrite) => Command::RewritePrompt(rewrite),
            Intent::SelectWorktreeProvider(selected) => Command::SelectWorktreeProvider(selected),
            Intent::CreateWorktree(created) => Command::CreateWorktree(created),
            Intent::RemoveWorktree(removed) => Command::RemoveWorktree(removed),
            Intent::Complete(completed) => Command::Complete(completed),
            Intent::Fail {
                exit_reason,
                reason,
            } => Command::Fail {
                exit_reason,
                reason,
                cause: None,
                at_ms,
            },
            Intent::Recover => Command::Recover { at_ms },
            Intent::StartMerge { target, mut merge } => {
                merge.step_id = self.resolve(&target).0;
                Command::StartMerge(merge)
            }
            Intent::Merge(merge) => Command::Merge(merge),
            Intent::RecordArtifact(artifact) => Command::RecordArtifact(artifact),
            Intent::StartPostmortem(start) => Command::StartPostmortem(start),
            Intent::EndPostmortem(end) => Command::EndPostmortem(end),
            Intent::Review(action) => Command::Review(action),
            Intent::RecordBaseline {
                target,
                mut measured,
            } => {
                measured.step_id = self.resolve(&target).0;
                Command::RecordBaseline(measured)
            }
            Intent::RecordMeasurement {
                target,
                mut measured,
            } => {
                measured.step_id = self.resolve(&target).0;
                Command::RecordMeasurement(measured)
            }
            Intent::DecideExperiment(decided) => Command::DecideExperiment(decided),
            Intent::Comment(comment) => Command::Comment(comment),
            Intent::RequestChanges(body) => Command::RequestChanges { body },
        };
        // Refusals are part of the history: the laws look at them through `outcomes`.
        let _ = self.submit(command);
    }

    /// Decides `command` at [`Driver::now`] and appends and applies the events it yields.
    pub fn submit(&mut self, command: Command) -> Result<Vec<EventRecord>, DomainError> {
        let decided = decide(&self.state, command.clone());
        let events = match decided {
            Ok(events) => events,
            Err(error) => {
                self.outcomes.push(Outcome {
                    command,
                    result: Err(error.clone()),
                });
                return Err(error);
            }
        };
        let mut appended = Vec::new();
        for event in events {
            let record = self.next_record(event);
            if let Err(error) = self.state.apply(&record) {
                self.refused.push(Refused {
                    command: command.clone(),
                    record,
                    error,
                });
                break;
            }
            self.next_seq += 1;
            if let Event::StepStarted(step) = &record.event {
                self.started.push(step.step_id);
            }
            self.records.push(record.clone());
            appended.push(record);
        }
        self.outcomes.push(Outcome {
            command,
            result: Ok(appended.len()),
        });
        Ok(appended)
    }

    /// The record `event` would be if it were appended now.
    pub fn next_record(&self, event: Event) -> EventRecord {
        EventRecord {
            seq: Seq(self.next_seq),
            run_id: self.run_id,
            version: self.state.version().next(),
            ts_ms: self.now,
            schema: SCHEMA,
            event,
        }
    }

    /// A step id no step of this run has.
    pub fn fresh_step(&mut self) -> StepId {
        self.fresh_steps += 1;
        let mut entropy = [0x5a; 10];
        entropy[2..].copy_from_slice(&self.fresh_steps.to_be_bytes());
        StepId::from_parts(self.now as u64, entropy)
    }

    /// The command that moves the run on from where it stands.
    fn advance(
        &mut self,
        mut step: StepStarted,
        mut outcome: StepFinished,
        postmortem: PostmortemStart,
        end: PostmortemEnd,
    ) -> Command {
        let Some(status) = self.state.status() else {
            return Command::Start;
        };
        match status {
            RunStatus::Pending => Command::Start,
            RunStatus::Paused => Command::Resume,
            RunStatus::Running => match self.state.open_step() {
                Some(open) => {
                    outcome.step_id = open.step_id;
                    outcome.phase = open.phase;
                    if !outcome.status.is_final() {
                        outcome.status = StepStatus::Succeeded;
                    }
                    Command::FinishStep(outcome)
                }
                None => {
                    step.step_id = self.fresh_step();
                    Command::StartStep(step)
                }
            },
            RunStatus::Completed | RunStatus::Failed | RunStatus::Canceled => {
                let postmortems_since_the_end = self
                    .records
                    .iter()
                    .rev()
                    .take_while(|record| !record.event.is_terminal())
                    .filter(|record| matches!(record.event, Event::PostmortemStart(_)))
                    .count();
                if self.state.postmortem_running() {
                    Command::EndPostmortem(end)
                } else if postmortems_since_the_end == 0 {
                    Command::StartPostmortem(postmortem)
                } else if status == RunStatus::Failed {
                    Command::Retry
                } else if !self.state.pending_comments().is_empty() {
                    Command::RequestChanges { body: None }
                } else if self.state.worktree().is_some() && !self.requested_changes() {
                    Command::Comment(ReviewComment {
                        path: "src/lib.rs".to_owned(),
                        line: 7,
                        body: "name it total".to_owned(),
                        side: loop_core::event::DiffSide::New,
                    })
                } else {
                    Command::Review(ReviewAction {
                        action: "diff".into(),
                        detail: BTreeMap::new(),
                    })
                }
            }
        }
    }

    /// Whether changes were requested of the run once already (the next ending is left alone,
    /// so histories do not go round that loop until their end).
    fn requested_changes(&self) -> bool {
        self.records
            .iter()
            .any(|record| matches!(record.event, Event::ChangesRequested(_)))
    }

    /// The step `target` names, and its phase when it is the open step.
    fn resolve(&mut self, target: &Target) -> (StepId, Option<Phase>) {
        match target {
            Target::Open => match (self.state.open_step(), self.started.last()) {
                (Some(open), _) => (open.step_id, Some(open.phase)),
                (None, Some(last)) => (*last, None),
                (None, None) => (self.fresh_step(), None),
            },
            Target::Started(index) if !self.started.is_empty() => {
                (self.started[index.index(self.started.len())], None)
            }
            Target::Started(_) | Target::Fresh => (self.fresh_step(), None),
        }
    }
}
