//! Runs driven the way the runtime drives them: a command goes through `loop_core::decide` on the
//! run's folded state, the events it returns are appended at the run's version, and the stored
//! records are folded back in. Every event a test appends is therefore legal where it stands.

use std::collections::BTreeMap;

use loop_core::event::{
    AgentRetry, AgentWaiting, ExitReason, NameSource, Phase, PostmortemEnd, PostmortemStart,
    PostmortemStatus, RunCompleted, RunCreated, SCHEMA, StepFinished, StepStarted, StepStatus,
    Tokens, VerificationCommand, WatchdogSignal, WorktreeCreated,
};
use loop_core::{
    Command, Event, EventRecord, RunId, RunState, RunStatus, Seq, StepId, Version, decide,
};
use loop_store::{EventStore, StoreError};

use crate::rng::Rng;

/// A plausible time for the first event of a test (2026-09-21T14:13:20Z).
pub const T0: i64 = 1_790_000_000_000;

/// How a randomly driven run behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// Steps forever (with pauses, retries and waits); never ends.
    Endless,
    /// Steps for a while, then completes, fails (and maybe retries) or is canceled, maybe runs
    /// a postmortem, and is over.
    Lifecycle,
}

/// The request of a run named `name` in `workspace_root`.
pub fn run_created(name: &str, workspace_root: &str) -> RunCreated {
    RunCreated {
        name: name.to_owned(),
        name_source: NameSource::Explicit,
        workspace_root: workspace_root.to_owned(),
        spec_path: "specs/feature.md".to_owned(),
        plan_path: "IMPLEMENTATION_PLAN.md".to_owned(),
        config: BTreeMap::from([
            ("base_branch".to_owned(), "main".to_owned()),
            ("iterations".to_owned(), "10".to_owned()),
        ]),
        prompt_template: Default::default(),
        tasks_done: None,
        tasks_total: None,
    }
}

/// One run as its driver knows it: the fold of the records it appended or read back.
#[derive(Clone, Debug)]
pub struct RunDriver {
    pub id: RunId,
    pub state: RunState,
}

impl RunDriver {
    /// A run with no events yet and a fresh id.
    pub fn fresh(rng: &mut Rng) -> RunDriver {
        RunDriver::with_id(RunId::from_parts(T0 as u64, rng.entropy()))
    }

    pub fn with_id(id: RunId) -> RunDriver {
        RunDriver {
            id,
            state: RunState::new(),
        }
    }

    /// The run as the store holds it.
    pub fn resume(store: &dyn EventStore, id: RunId) -> RunDriver {
        let records = store.read_run(id).expect("read the run");
        let state = RunState::fold(&records).expect("stored events are legal");
        RunDriver { id, state }
    }

    pub fn version(&self) -> Version {
        self.state.version()
    }

    /// The events that carry out `commands`, one after the other, from the run's state; panics
    /// on a command the domain refuses (a test bug).
    pub fn events(&self, commands: impl IntoIterator<Item = Command>, ts_ms: i64) -> Vec<Event> {
        let mut scratch = self.state.clone();
        let mut events = Vec::new();
        for command in commands {
            let decided = decide(&scratch, command.clone())
                .unwrap_or_else(|e| panic!("{command:?} refused: {e}"));
            events.extend(self.apply_scratch(&mut scratch, decided, ts_ms));
        }
        events
    }

    /// Up to `max` random legal commands' events, or none when the run is over.
    pub fn random_events(&self, rng: &mut Rng, ts_ms: i64, script: Script, max: u64) -> Vec<Event> {
        let mut scratch = self.state.clone();
        let mut events = Vec::new();
        for _ in 0..rng.between(1, max) {
            let Some(command) = choose(&scratch, rng, ts_ms, script) else {
                break;
            };
            let decided = decide(&scratch, command.clone())
                .unwrap_or_else(|e| panic!("chosen {command:?} refused: {e}"));
            events.extend(self.apply_scratch(&mut scratch, decided, ts_ms));
        }
        events
    }

    fn apply_scratch(&self, scratch: &mut RunState, events: Vec<Event>, ts_ms: i64) -> Vec<Event> {
        for event in &events {
            let record = EventRecord {
                seq: Seq(0),
                run_id: self.id,
                version: scratch.version().next(),
                ts_ms,
                schema: SCHEMA,
                event: event.clone(),
            };
            scratch.apply(&record).expect("decided events apply");
        }
        events
    }

    /// Appends `events` at the run's version and folds the stored records in.
    pub fn append_events(
        &mut self,
        store: &dyn EventStore,
        ts_ms: i64,
        events: Vec<Event>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let records = store.append(self.id, self.version(), ts_ms, events)?;
        self.accept(&records);
        Ok(records)
    }

    /// Decides `commands` and appends their events as one append.
    pub fn append(
        &mut self,
        store: &dyn EventStore,
        ts_ms: i64,
        commands: impl IntoIterator<Item = Command>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let events = self.events(commands, ts_ms);
        self.append_events(store, ts_ms, events)
    }

    /// Appends up to `max` random legal commands' events as one append; `Ok(None)` when the run
    /// is over.
    pub fn advance(
        &mut self,
        store: &dyn EventStore,
        rng: &mut Rng,
        ts_ms: i64,
        script: Script,
        max: u64,
    ) -> Result<Option<Vec<EventRecord>>, StoreError> {
        let events = self.random_events(rng, ts_ms, script, max);
        if events.is_empty() {
            return Ok(None);
        }
        self.append_events(store, ts_ms, events).map(Some)
    }

    /// Folds records the store returned for this run.
    pub fn accept(&mut self, records: &[EventRecord]) {
        for record in records {
            self.state.apply(record).expect("stored events are legal");
        }
    }
}

/// A legal next command for a run in `state`, or `None` when the script has it over.
fn choose(state: &RunState, rng: &mut Rng, ts_ms: i64, script: Script) -> Option<Command> {
    let lifecycle = script == Script::Lifecycle;
    let Some(status) = state.status() else {
        let n = rng.below(1000);
        return Some(Command::Create(run_created(
            &format!("run-{n}"),
            "/work/project",
        )));
    };
    let at_ms = ts_ms;
    Some(match status {
        RunStatus::Pending if lifecycle && rng.one_in(10) => Command::Cancel {
            reason: Some("not needed".to_owned()),
            at_ms,
        },
        RunStatus::Pending => Command::Start,
        RunStatus::Paused if lifecycle && rng.one_in(4) => Command::Cancel {
            reason: None,
            at_ms,
        },
        RunStatus::Paused => Command::Resume,
        RunStatus::Running => match state.open_step() {
            Some(open) => {
                let (step_id, phase, iteration) = (open.step_id, open.phase, open.iteration);
                match rng.below(10) {
                    0 => Command::RecordRetry(AgentRetry {
                        step_id,
                        attempt: 2,
                        delay_ms: 1000,
                        reason: "overloaded".to_owned(),
                        count: None,
                        paid: Default::default(),
                        account: None,
                        limited_until_ms: None,
                        window: None,
                        next_account: None,
                        budget: None,
                    }),
                    1 if phase == Phase::Verification => {
                        Command::RecordVerification(VerificationCommand {
                            step_id,
                            command: "cargo test".to_owned(),
                            exit_code: Some(rng.below(2) as i32),
                            duration_ms: rng.below(5000),
                        })
                    }
                    2 if lifecycle => Command::Fail {
                        exit_reason: ExitReason::ClaudeFailed,
                        reason: "agent crashed".to_owned(),
                        cause: None,
                        at_ms,
                    },
                    3 => Command::Pause {
                        reason: Some("asked to".to_owned()),
                        at_ms,
                    },
                    _ => Command::FinishStep(finished(rng, step_id, phase, iteration)),
                }
            }
            None => match rng.below(12) {
                0 => Command::RecordWait(AgentWaiting {
                    step_id: None,
                    until_ms: ts_ms + 60_000,
                    reason: "usage limit".to_owned(),
                    paid: Default::default(),
                    account: None,
                    window: None,
                    pool_wait: None,
                }),
                1 => Command::RecordWatchdogSignal(WatchdogSignal {
                    iteration: 1,
                    signal: "no_progress".into(),
                    detail: String::new(),
                }),
                2 if state.worktree().is_none() => Command::CreateWorktree(WorktreeCreated {
                    provider: "git".into(),
                    path: "/work/project-wt".to_owned(),
                    base_branch: "main".to_owned(),
                    run_branch: "loop/run".to_owned(),
                    reused: false,
                }),
                3 if lifecycle => Command::Complete(RunCompleted {
                    exit_reason: ExitReason::CompletePlan,
                    completed_iteration: 3,
                }),
                4 if lifecycle => Command::Fail {
                    exit_reason: ExitReason::Failed,
                    reason: "verification kept failing".to_owned(),
                    cause: None,
                    at_ms,
                },
                _ => {
                    let phase = match rng.below(4) {
                        0 => Phase::Review,
                        1 => Phase::Verification,
                        _ => Phase::Implementation,
                    };
                    Command::StartStep(StepStarted {
                        step_id: StepId::from_parts(ts_ms as u64, rng.entropy()),
                        phase,
                        iteration: rng.between(1, 20) as u32,
                        attempt: 1,
                        prompt_path: Some("prompt.txt".to_owned()),
                        resumed: Default::default(),
                        session_id: Default::default(),
                        account: None,
                    })
                }
            },
        },
        _ if state.postmortem_running() => Command::EndPostmortem(PostmortemEnd {
            status: PostmortemStatus::Ok,
            reason: None,
            paid: Default::default(),
        }),
        RunStatus::Failed if rng.one_in(3) => Command::Retry,
        RunStatus::Completed | RunStatus::Failed | RunStatus::Canceled => {
            if rng.one_in(2) {
                return None;
            }
            Command::StartPostmortem(PostmortemStart {
                reason: "run ended".to_owned(),
            })
        }
    })
}

fn finished(rng: &mut Rng, step_id: StepId, phase: Phase, iteration: u32) -> StepFinished {
    let succeeded = !rng.one_in(4);
    StepFinished {
        step_id,
        phase,
        status: if succeeded {
            StepStatus::Succeeded
        } else {
            StepStatus::Failed
        },
        exit_code: Some(if succeeded { 0 } else { 1 }),
        duration_ms: rng.below(100_000),
        output_path: Some(format!("iter-{iteration:02}-impl.log")),
        output_bytes: rng.below(1 << 20),
        output_lines: rng.below(1000),
        tokens: Some(Tokens {
            input: rng.below(10_000),
            output: rng.below(10_000),
            cached: Default::default(),
            cache_write: Default::default(),
            reasoning: Default::default(),
        }),
        // Thousandths are not exact in binary: the stored sum must still equal a fresh fold's.
        cost_usd: Some(rng.below(1000) as f64 / 1000.0),
        tasks_done: Some(rng.below(5) as u32),
        tasks_total: Some(5),
        message: None,
        head_commit: None,
        plan_sha256: None,
        answer_sha256: None,
        agent: Default::default(),
        account: None,
        cost_estimated: false,
    }
}
