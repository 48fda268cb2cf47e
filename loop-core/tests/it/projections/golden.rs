//! The golden run: one realistic run as commands at fixed times, and where its files live.

use super::*;

pub(super) fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

pub(super) fn run_id() -> RunId {
    RunId::from_parts(T0 as u64, *b"loop-run-1")
}

/// Step `n` of the golden run, started at `at_ms`.
pub(super) fn step_id(n: u8, at_ms: i64) -> StepId {
    StepId::from_parts(at_ms as u64, [b's', b't', b'e', b'p', 0, 0, 0, 0, 0, n])
}

pub(super) const RUN_DIR: &str = "/work/demo/logs/loop/run-";

pub(super) fn in_run_dir(name: &str) -> String {
    format!("{RUN_DIR}{}/{name}", run_id())
}

pub(super) fn started(step_id: StepId, phase: Phase, iteration: u32, prompt: &str) -> Command {
    Command::StartStep(StepStarted {
        step_id,
        phase,
        iteration,
        attempt: 1,
        prompt_path: Some(in_run_dir(prompt)),
        session_id: Default::default(),
        resumed: Default::default(),
        account: None,
    })
}

pub(super) struct Finish {
    step_id: StepId,
    phase: Phase,
    duration_ms: u64,
    log: &'static str,
    output_bytes: u64,
    output_lines: u64,
    tokens: Option<(u64, u64)>,
    cost_usd: Option<f64>,
    tasks: Option<(u32, u32)>,
    message: Option<&'static str>,
}

pub(super) fn finished(finish: Finish) -> Command {
    Command::FinishStep(StepFinished {
        exit_code: Some(0),
        duration_ms: finish.duration_ms,
        output_path: Some(in_run_dir(finish.log)),
        output_bytes: finish.output_bytes,
        output_lines: finish.output_lines,
        tokens: finish.tokens.map(|(input, output)| Tokens {
            input,
            output,
            cached: Default::default(),
            cache_write: Default::default(),
            reasoning: Default::default(),
        }),
        cost_usd: finish.cost_usd,
        tasks_done: finish.tasks.map(|(done, _)| done),
        tasks_total: finish.tasks.map(|(_, total)| total),
        message: finish.message.map(str::to_owned),
        ..finished_payload(finish.step_id, finish.phase, StepStatus::Succeeded)
    })
}

/// The request of the golden run, with its frozen configuration.
pub(super) fn created() -> RunCreated {
    let config = BTreeMap::from(
        [
            ("base_branch", "main"),
            ("completion_mode", "trailing"),
            ("iterations", "10"),
            ("merge_strategy", "squash"),
            ("merge_target_branch", "main"),
            ("model", "opus"),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned())),
    );
    RunCreated {
        name: "tidy-parser".into(),
        name_source: NameSource::SpecSlug,
        workspace_root: "/work/demo".into(),
        spec_path: "specs/parser.md".into(),
        plan_path: "IMPLEMENTATION_PLAN.md".into(),
        config,
        prompt_template: Default::default(),
        tasks_done: None,
        tasks_total: None,
    }
}

/// Two implementation iterations, a review, a verification with two commands, completion,
/// and a postmortem; every command at a fixed time.
///
/// The costs are exact binary fractions, so their sum is exact too. With decimal costs the
/// projections carry float noise (0.8123 + 0.6421 + 0.1534 is written as
/// `1.6078000000000001`), and whether `summary.json` should round is not for a golden file to
/// settle.
pub(super) fn golden_run() -> Vec<EventRecord> {
    let impl1 = step_id(1, T0 + 2_300);
    let impl2 = step_id(2, T0 + 95_400);
    let review = step_id(3, T0 + 170_500);
    let verify = step_id(4, T0 + 201_600);
    let script: Vec<(i64, Command)> = vec![
        (0, Command::Create(created())),
        (150, Command::Start),
        (
            400,
            Command::SelectWorktreeProvider(WorktreeProviderSelected {
                provider: "git".into(),
            }),
        ),
        (
            2_100,
            Command::CreateWorktree(WorktreeCreated {
                provider: "git".into(),
                path: "/work/demo/.loop/worktrees/tidy-parser".into(),
                base_branch: "main".into(),
                run_branch: "loop/tidy-parser".into(),
                reused: false,
            }),
        ),
        (
            2_300,
            started(impl1, Phase::Implementation, 1, "prompt.txt"),
        ),
        (
            15_000,
            Command::RecordRetry(AgentRetry {
                step_id: impl1,
                attempt: 2,
                delay_ms: 5_000,
                reason: "overloaded".into(),
                count: None,
                paid: Default::default(),
                account: None,
                limited_until_ms: None,
                window: None,
                next_account: None,
                budget: None,
            }),
        ),
        (
            95_300,
            finished(Finish {
                step_id: impl1,
                phase: Phase::Implementation,
                duration_ms: 93_000,
                log: "iter-01-impl.log",
                output_bytes: 48_213,
                output_lines: 912,
                tokens: Some((120_345, 8_210)),
                cost_usd: Some(0.8125),
                tasks: Some((3, 5)),
                message: None,
            }),
        ),
        (
            95_400,
            started(impl2, Phase::Implementation, 2, "prompt.txt"),
        ),
        (
            170_400,
            finished(Finish {
                step_id: impl2,
                phase: Phase::Implementation,
                duration_ms: 75_000,
                log: "iter-02-impl.log",
                output_bytes: 39_002,
                output_lines: 780,
                tokens: Some((98_000, 6_500)),
                cost_usd: Some(0.6875),
                tasks: Some((5, 5)),
                message: None,
            }),
        ),
        (
            170_500,
            started(review, Phase::Review, 2, "review-prompt.txt"),
        ),
        (
            201_500,
            finished(Finish {
                step_id: review,
                phase: Phase::Review,
                duration_ms: 31_000,
                log: "iter-02-review.log",
                output_bytes: 6_120,
                output_lines: 88,
                tokens: Some((30_100, 1_200)),
                cost_usd: Some(0.1875),
                tasks: None,
                message: Some("approved: no blocking findings"),
            }),
        ),
        (
            201_600,
            Command::StartStep(StepStarted {
                step_id: verify,
                phase: Phase::Verification,
                iteration: 2,
                attempt: 1,
                prompt_path: None,
                session_id: Default::default(),
                resumed: Default::default(),
                account: None,
            }),
        ),
        (
            224_100,
            Command::RecordVerification(VerificationCommand {
                step_id: verify,
                command: "cargo test".into(),
                exit_code: Some(0),
                duration_ms: 22_400,
            }),
        ),
        (
            226_600,
            Command::RecordVerification(VerificationCommand {
                step_id: verify,
                command: "cargo clippy -- -D warnings".into(),
                exit_code: Some(0),
                duration_ms: 2_430,
            }),
        ),
        (
            226_700,
            finished(Finish {
                step_id: verify,
                phase: Phase::Verification,
                duration_ms: 25_100,
                log: "iter-02-verify.log",
                output_bytes: 15_873,
                output_lines: 402,
                tokens: None,
                cost_usd: None,
                tasks: Some((5, 5)),
                message: None,
            }),
        ),
        (
            226_800,
            Command::DetectCompletion(CompletionDetected {
                iteration: 2,
                commit: Some("3f2c9a1".into()),
            }),
        ),
        (
            227_000,
            Command::Complete(RunCompleted {
                exit_reason: ExitReason::CompletePlan,
                completed_iteration: 2,
            }),
        ),
        (
            227_100,
            Command::StartPostmortem(PostmortemStart {
                reason: "run completed".into(),
            }),
        ),
        (
            260_000,
            Command::EndPostmortem(PostmortemEnd {
                status: PostmortemStatus::Ok,
                reason: None,
                paid: Default::default(),
            }),
        ),
    ];
    let mut driver = Driver::new(run_id());
    for (offset, command) in script {
        driver.now = T0 + offset;
        let name = format!("{command:?}");
        driver
            .submit(command)
            .unwrap_or_else(|error| panic!("golden command {name} refused: {error}"));
    }
    driver.records
}
