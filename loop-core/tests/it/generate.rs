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

fn a_move(intent: impl Strategy<Value = Intent>) -> impl Strategy<Value = Move> {
    (
        1i64..3_000,
        prop_oneof![8 => Just(0u64), 2 => 1u64..4],
        intent,
    )
        .prop_map(|(dt_ms, seq_gap, intent)| Move {
            dt_ms,
            seq_gap,
            intent,
        })
}

/// Any command; `ending` weighs Complete, Fail and Cancel, `aftermath` the commands for a
/// finished run (Retry, postmortem, Review).
fn intent(ending: u32, aftermath: u32) -> impl Strategy<Value = Intent> {
    use proptest::option::of;

    let advance = (step_started(), step_finished(), text(), postmortem_status()).prop_map(
        |(step, outcome, reason, status)| Intent::Advance {
            step,
            outcome,
            postmortem: PostmortemStart { reason },
            end: PostmortemEnd {
                status,
                reason: None,
                paid: Default::default(),
            },
        },
    );
    let start_step = (
        proptest::option::weighted(0.1, any::<Index>()),
        step_started(),
    )
        .prop_map(|(reuse, step)| Intent::StartStep { reuse, step });
    let finish_step = (target(), proptest::bool::weighted(0.1), step_finished()).prop_map(
        |(target, wrong_phase, step)| Intent::FinishStep {
            target,
            wrong_phase,
            step,
        },
    );
    let record_retry = (target(), 1u32..5, 0u64..60_000, text()).prop_map(
        |(target, attempt, delay_ms, reason)| Intent::RecordRetry {
            target,
            retry: AgentRetry {
                step_id: placeholder_step(),
                attempt,
                delay_ms,
                reason,
                count: None,
                paid: Default::default(),
                account: None,
                limited_until_ms: None,
                window: None,
                next_account: None,
                budget: None,
            },
        },
    );
    let record_wait =
        (of(target()), 0i64..86_400_000, text()).prop_map(|(target, later, reason)| {
            Intent::RecordWait {
                target,
                wait: AgentWaiting {
                    step_id: None,
                    until_ms: T0 + later,
                    reason,
                    paid: Default::default(),
                    account: None,
                    window: None,
                },
            }
        });
    let record_verification = (target(), text(), exit_code(), 0u64..120_000).prop_map(
        |(target, command, exit_code, duration_ms)| Intent::RecordVerification {
            target,
            command: VerificationCommand {
                step_id: placeholder_step(),
                command,
                exit_code,
                duration_ms,
            },
        },
    );
    let detect = (iteration(), of(text())).prop_map(|(iteration, commit)| {
        Intent::DetectCompletion(CompletionDetected { iteration, commit })
    });
    let reject = (iteration(), text()).prop_map(|(iteration, reason)| {
        Intent::RejectCompletion(CompletionRejected { iteration, reason })
    });
    let signal = (iteration(), text(), text()).prop_map(|(iteration, signal, detail)| {
        Intent::RecordWatchdogSignal(WatchdogSignal {
            iteration,
            signal,
            detail,
        })
    });
    let rewrite = (text(), text(), text()).prop_map(|(signal, prompt_before, prompt_after)| {
        Intent::RewritePrompt(WatchdogRewrite {
            signal,
            prompt_before,
            prompt_after,
        })
    });
    let select_provider = text().prop_map(|provider| {
        Intent::SelectWorktreeProvider(WorktreeProviderSelected {
            provider: provider.into(),
        })
    });
    let create_worktree = (text(), text(), text(), text(), any::<bool>()).prop_map(
        |(provider, path, base_branch, run_branch, reused)| {
            Intent::CreateWorktree(WorktreeCreated {
                provider: provider.into(),
                path,
                base_branch,
                run_branch,
                reused,
            })
        },
    );
    let remove_worktree = text().prop_map(|path| Intent::RemoveWorktree(WorktreeRemoved { path }));
    let complete = (exit_reason(), iteration()).prop_map(|(exit_reason, completed_iteration)| {
        Intent::Complete(RunCompleted {
            exit_reason,
            completed_iteration,
        })
    });
    let fail = (exit_reason(), text()).prop_map(|(exit_reason, reason)| Intent::Fail {
        exit_reason,
        reason,
    });
    let merge = (text(), of(text()), of(text())).prop_map(|(strategy, commit, conflict)| {
        Intent::Merge(MergeFinished {
            strategy,
            commit,
            conflict,
        })
    });
    let start_merge = (target(), text(), text(), of(text()), text()).prop_map(
        |(target, branch, strategy, onto, commit)| Intent::StartMerge {
            target,
            merge: MergeStarted {
                step_id: placeholder_step(),
                target: branch,
                strategy,
                onto,
                commit,
            },
        },
    );
    let start_postmortem =
        text().prop_map(|reason| Intent::StartPostmortem(PostmortemStart { reason }));
    let end_postmortem = postmortem_status().prop_map(|status| {
        Intent::EndPostmortem(PostmortemEnd {
            status,
            reason: None,
            paid: Default::default(),
        })
    });
    let review = (
        text(),
        proptest::collection::btree_map(text(), text(), 0..3),
    )
        .prop_map(|(action, detail)| {
            Intent::Review(ReviewAction {
                action: action.into(),
                detail,
            })
        });
    // Mostly well-formed comments; now and then one without a path, a line or words.
    let comment = (
        prop_oneof![4 => text(), 1 => Just(String::new())],
        prop_oneof![4 => 1u32..400, 1 => Just(0u32)],
        text(),
        any::<bool>(),
    )
        .prop_map(|(path, line, body, old)| {
            Intent::Comment(ReviewComment {
                path,
                line,
                body,
                side: if old {
                    loop_core::event::DiffSide::Old
                } else {
                    loop_core::event::DiffSide::New
                },
            })
        });
    let request_changes = of(text()).prop_map(Intent::RequestChanges);

    let record_baseline = (target(), iteration(), samples(), of(drift())).prop_map(
        |(target, iteration, baseline, drift)| Intent::RecordBaseline {
            target,
            measured: ExperimentBaseline {
                step_id: placeholder_step(),
                iteration,
                metric: "seconds".to_owned(),
                baseline,
                drift,
            },
        },
    );
    let record_measurement = (target(), iteration(), samples(), samples()).prop_map(
        |(target, iteration, candidate, best)| Intent::RecordMeasurement {
            target,
            measured: ExperimentMeasured {
                step_id: placeholder_step(),
                iteration,
                metric: "seconds".to_owned(),
                candidate,
                best,
            },
        },
    );
    let decide_experiment = (
        iteration(),
        any::<bool>(),
        proptest::sample::select(vec![
            Reason::Improved,
            Reason::WithinNoise,
            Reason::Worse,
            Reason::NoChange,
            Reason::VerificationFailed,
        ]),
        of(text()),
        of(text()),
        of(-1.0f64..1.0),
    )
        .prop_map(|(iteration, kept, reason, commit, idea, effect)| {
            Intent::DecideExperiment(ExperimentDecided {
                iteration,
                decision: if kept {
                    Decision::Kept
                } else {
                    Decision::Discarded
                },
                reason,
                commit,
                best_commit: "b".repeat(40),
                idea,
                metric: effect.map(|e| 1.0 + e),
                best_metric: effect.map(|_| 1.0),
                effect,
                interval: effect.map(|e| [e - 0.1, e + 0.1]),
                kept_ref: None,
            })
        });

    prop_oneof![
        24 => advance,
        1 => run_created().prop_map(Intent::Create),
        1 => (text(), proptest::sample::select(vec![NameSource::Haiku, NameSource::SpecSlug]))
            .prop_map(|(name, name_source)| Intent::Name(RunNamed { name, name_source, paid: Default::default(),  })),
        1 => (text(), of(text()))
            .prop_map(|(node_id, took_over_from)| Intent::Claim(RunClaimed { node_id, lease_ms: 15_000, took_over_from })),
        2 => Just(Intent::Start),
        1 => of(text()).prop_map(Intent::Pause),
        1 => Just(Intent::RequestPause),
        2 => Just(Intent::Resume),
        ending => of(text()).prop_map(Intent::Cancel),
        aftermath => Just(Intent::Retry),
        4 => start_step,
        6 => finish_step,
        1 => record_retry,
        1 => record_wait,
        4 => record_verification,
        1 => detect,
        1 => reject,
        1 => signal,
        1 => rewrite,
        1 => select_provider,
        1 => create_worktree,
        1 => remove_worktree,
        ending => complete,
        ending => fail,
        1 => Just(Intent::Recover),
        1 => start_merge,
        1 => merge,
        1 => artifact().prop_map(Intent::RecordArtifact),
        aftermath => start_postmortem,
        aftermath => end_postmortem,
        aftermath => review,
        2 => record_baseline,
        3 => record_measurement,
        1 => decide_experiment,
        aftermath => comment,
        aftermath => request_changes,
    ]
}

/// A commit's samples: a few positive numbers around 1.
fn samples() -> impl Strategy<Value = Samples> {
    (
        string_regex("[0-9a-f]{40}").expect("valid regex"),
        proptest::collection::vec(0.5f64..2.0, 1..6),
    )
        .prop_map(|(commit, values)| loop_core::experiment::samples(&commit, values))
}

fn drift() -> impl Strategy<Value = loop_core::event::Drift> {
    (-0.5f64..0.5, 0.0f64..0.2).prop_map(|(effect, half)| loop_core::event::Drift {
        effect,
        interval: [effect - half, effect + half],
        beyond_noise: half < effect.abs(),
    })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        8 => Just(Target::Open),
        1 => any::<Index>().prop_map(Target::Started),
        1 => Just(Target::Fresh),
    ]
}

/// Mostly tame text, sometimes with the tabs, line breaks, quotes and non-ASCII that the
/// one-line formats and JSON must cope with.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => string_regex("[a-z][a-z0-9_ ./-]{0,10}").expect("valid regex"),
        1 => string_regex("[\t\n\r \"\\\\a-z\u{e9}\u{6f22}\u{1f600}]{0,6}").expect("valid regex"),
    ]
}

fn iteration() -> impl Strategy<Value = u32> {
    1u32..6
}

fn exit_code() -> impl Strategy<Value = Option<i32>> {
    proptest::option::of(prop_oneof![3 => Just(0), 1 => -2i32..130])
}

fn exit_reason() -> impl Strategy<Value = ExitReason> {
    proptest::sample::select(vec![
        ExitReason::CompletePlan,
        ExitReason::CompleteReviewer,
        ExitReason::IterationsExhausted,
        ExitReason::ClaudeFailed,
        ExitReason::BudgetExhausted,
        ExitReason::Failed,
        ExitReason::Canceled,
    ])
}

fn postmortem_status() -> impl Strategy<Value = PostmortemStatus> {
    proptest::sample::select(vec![
        PostmortemStatus::Ok,
        PostmortemStatus::Failed,
        PostmortemStatus::Skipped,
    ])
}

fn phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        4 => Just(Phase::Implementation),
        2 => Just(Phase::Review),
        3 => Just(Phase::Verification),
        1 => Just(Phase::Watchdog),
        // The merge and experiment phases are the only ones whose events (MERGE_STARTED,
        // EXPERIMENT_*) need an open step of that phase: weighed so that a sample reaches them.
        2 => Just(Phase::Merge),
        2 => Just(Phase::Measurement),
        2 => Just(Phase::Baseline),
    ]
}

/// Mostly final statuses; sometimes an open one, which may not finish a step.
fn finish_status() -> impl Strategy<Value = StepStatus> {
    prop_oneof![
        12 => Just(StepStatus::Succeeded),
        3 => Just(StepStatus::Failed),
        1 => Just(StepStatus::Canceled),
        1 => Just(StepStatus::Interrupted),
        1 => Just(StepStatus::Queued),
        1 => Just(StepStatus::InProgress),
    ]
}

fn run_created() -> impl Strategy<Value = RunCreated> {
    let name_source = proptest::sample::select(vec![
        NameSource::Haiku,
        NameSource::SpecSlug,
        NameSource::Explicit,
    ]);
    let key = proptest::sample::select(vec![
        "base_branch",
        "merge_target_branch",
        "merge_strategy",
        "model",
        "completion_mode",
        "log_dir",
        "iterations",
    ]);
    (
        text(),
        name_source,
        string_regex("/work/[a-z]{1,6}").expect("valid regex"),
        text(),
        text(),
        proptest::collection::btree_map(key.prop_map(str::to_owned), text(), 0..4),
        proptest::bool::weighted(0.3),
    )
        .prop_map(
            |(name, name_source, workspace_root, spec_path, plan_path, config, experiment)| {
                let mut config: BTreeMap<String, String> = config.into_iter().collect();
                if experiment {
                    config.insert("mode".to_owned(), "experiment".to_owned());
                    config.insert("measure_cmd".to_owned(), "./bench".to_owned());
                }
                RunCreated {
                    name,
                    name_source,
                    workspace_root,
                    spec_path,
                    plan_path,
                    config,
                    prompt_template: Default::default(),
                    tasks_done: None,
                    tasks_total: None,
                }
            },
        )
}

fn step_started() -> impl Strategy<Value = StepStarted> {
    (phase(), iteration(), 1u32..4, proptest::option::of(text())).prop_map(
        |(phase, iteration, attempt, prompt_path)| StepStarted {
            step_id: placeholder_step(),
            phase,
            iteration,
            attempt,
            prompt_path,
            session_id: Default::default(),
            resumed: Default::default(),
            account: None,
        },
    )
}

fn step_finished() -> impl Strategy<Value = StepFinished> {
    let outcome = (
        phase(),
        finish_status(),
        exit_code(),
        0u64..600_000,
        proptest::option::of(text()),
        0u64..1_000_000,
        0u64..10_000,
    );
    let figures = (
        proptest::option::of(
            (0u64..200_000, 0u64..50_000).prop_map(|(input, output)| Tokens {
                input,
                output,
                cached: Default::default(),
                cache_write: Default::default(),
                reasoning: Default::default(),
            }),
        ),
        // Any finite cost: summing and JSON must keep every bit.
        proptest::option::of(0.0f64..5.0),
        proptest::option::of(0u32..20),
        proptest::option::of(0u32..20),
        proptest::option::of(text()),
    );
    (outcome, figures).prop_map(
        |(
            (phase, status, exit_code, duration_ms, output_path, output_bytes, output_lines),
            (tokens, cost_usd, tasks_done, tasks_total, message),
        )| StepFinished {
            exit_code,
            duration_ms,
            output_path,
            output_bytes,
            output_lines,
            tokens,
            cost_usd,
            tasks_done,
            tasks_total,
            message,
            ..finished_payload(placeholder_step(), phase, status)
        },
    )
}

fn artifact() -> impl Strategy<Value = ArtifactWritten> {
    (
        text(),
        text(),
        proptest::sample::select(vec![ArtifactLocation::Workspace, ArtifactLocation::Global]),
        string_regex("[0-9a-f]{64}").expect("valid regex"),
        0u64..1_000_000,
    )
        .prop_map(|(kind, path, location, sha256, bytes)| ArtifactWritten {
            kind,
            path,
            location,
            sha256,
            bytes,
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
