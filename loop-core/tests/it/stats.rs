//! Figures across runs: a handful of runs with hand-computed figures, and the fold's laws over
//! generated histories.

use std::collections::BTreeMap;

use loop_core::event::{
    AgentRetry, AgentWaiting, ExitReason, NameSource, Phase, RunCompleted, RunCreated,
    StepFinished, StepStarted, StepStatus, WatchdogRewrite, WatchdogSignal,
};
use loop_core::stats::{Scope, Stats, StatsFold};
use loop_core::{Command, EventRecord, RunId, RunStatus, StepId};
use proptest::prelude::*;

use crate::generate::{self, Driver, T0, finished_payload};

/// A run of the fixture, played command by command at given times.
struct Run {
    driver: Driver,
    steps: u8,
    seed: u8,
}

impl Run {
    fn create(seed: u8, at: i64, workspace: &str) -> Run {
        let mut run = Run {
            driver: Driver::new(RunId::from_parts(T0 as u64, [seed; 10])),
            steps: 0,
            seed,
        };
        run.at(
            at,
            Command::Create(RunCreated {
                name: format!("run-{seed}"),
                name_source: NameSource::SpecSlug,
                workspace_root: workspace.to_owned(),
                spec_path: "specs/a.md".to_owned(),
                plan_path: "specs/planning/a-plan.md".to_owned(),
                config: BTreeMap::new(),
                prompt_template: Default::default(),
                tasks_done: None,
                tasks_total: None,
            }),
        );
        run
    }

    fn at(&mut self, at: i64, command: Command) -> &mut Run {
        self.driver.now = at;
        self.driver
            .submit(command)
            .unwrap_or_else(|error| panic!("run {}: {error}", self.seed));
        self
    }

    /// A step from `from` to `to`; `finish` fills in the outcome.
    fn step(
        &mut self,
        phase: Phase,
        from: i64,
        to: i64,
        finish: impl FnOnce(&mut StepFinished),
    ) -> &mut Run {
        self.steps += 1;
        let step_id =
            StepId::from_parts(T0 as u64, [self.seed, self.steps, 0, 0, 0, 0, 0, 0, 0, 0]);
        self.at(
            from,
            Command::StartStep(StepStarted {
                step_id,
                phase,
                iteration: 1,
                attempt: 1,
                prompt_path: None,
                session_id: Default::default(),
                resumed: Default::default(),
                account: None,
            }),
        );
        let mut finished = finished_payload(step_id, phase, StepStatus::Succeeded);
        finished.duration_ms = u64::try_from(to - from).unwrap();
        finish(&mut finished);
        self.at(to, Command::FinishStep(finished))
    }

    fn open_step(&mut self, at: i64) -> StepId {
        self.steps += 1;
        let step_id =
            StepId::from_parts(T0 as u64, [self.seed, self.steps, 0, 0, 0, 0, 0, 0, 0, 0]);
        self.at(
            at,
            Command::StartStep(StepStarted {
                step_id,
                phase: Phase::Implementation,
                iteration: 1,
                attempt: 1,
                prompt_path: None,
                session_id: Default::default(),
                resumed: Default::default(),
                account: None,
            }),
        );
        step_id
    }

    fn records(&self) -> &[EventRecord] {
        &self.driver.records
    }
}

fn cost(usd: f64, tasks: (u32, u32)) -> impl FnOnce(&mut StepFinished) {
    move |step| {
        step.cost_usd = Some(usd);
        step.tasks_done = Some(tasks.0);
        step.tasks_total = Some(tasks.1);
    }
}

fn failed(step: &mut StepFinished) {
    step.status = StepStatus::Failed;
}

fn complete(iteration: u32) -> Command {
    Command::Complete(RunCompleted {
        exit_reason: ExitReason::CompletePlan,
        completed_iteration: iteration,
    })
}

const S: i64 = 1_000;

/// Six runs:
/// - A (`/w`): two tasks, each implemented and verified, one agent retry, completed at
///   iteration 2; active 124 s, $0.75.
/// - B (`/w`): no task done, two watchdog signals, a rewrite, a failed verification, a third
///   signal, failed by the watchdog; active 39 s, $0.125.
/// - C (`/w`): waits on a usage limit for 20 s of its 90, then is canceled; active 30 s.
/// - F (`/w`): still running, waiting since 510 s on a limit until 600 s; at 550 s, active
///   50 s and waited 40 s.
/// - D (`/w`, created before `since`): completed at iteration 1 with one task.
/// - E (`/other`): completed at iteration 3 with three tasks.
fn fixture() -> Vec<Run> {
    let mut a = Run::create(0xa, T0, "/w");
    a.at(T0 + S, Command::Start)
        .step(
            Phase::Implementation,
            T0 + S,
            T0 + 61 * S,
            cost(0.5, (1, 2)),
        )
        .step(Phase::Verification, T0 + 61 * S, T0 + 62 * S, |_| {});
    let second = a.open_step(T0 + 62 * S);
    a.at(
        T0 + 70 * S,
        Command::RecordRetry(AgentRetry {
            step_id: second,
            attempt: 2,
            delay_ms: 1_000,
            reason: "overloaded".to_owned(),
            count: None,
            paid: Default::default(),
            account: None,
            limited_until_ms: None,
            window: None,
            next_account: None,
            budget: None,
        }),
    );
    let mut done = finished_payload(second, Phase::Implementation, StepStatus::Succeeded);
    cost(0.25, (2, 2))(&mut done);
    a.at(T0 + 122 * S, Command::FinishStep(done))
        .step(Phase::Verification, T0 + 122 * S, T0 + 123 * S, |_| {})
        .at(T0 + 125 * S, complete(2));

    let signal = |kind: &str| {
        Command::RecordWatchdogSignal(WatchdogSignal {
            iteration: 1,
            signal: kind.into(),
            detail: String::new(),
        })
    };
    let mut b = Run::create(0xb, T0 + 200 * S, "/w");
    b.at(T0 + 201 * S, Command::Start)
        .step(
            Phase::Implementation,
            T0 + 201 * S,
            T0 + 231 * S,
            cost(0.125, (0, 3)),
        )
        .at(T0 + 231 * S, signal("stalled"))
        .at(T0 + 231 * S, signal("no_progress"))
        .at(
            T0 + 231 * S,
            Command::RewritePrompt(WatchdogRewrite {
                signal: "stalled,no_progress".into(),
                prompt_before: "prompt.txt".to_owned(),
                prompt_after: "prompt.rewrite.1.txt".to_owned(),
            }),
        )
        .step(Phase::Verification, T0 + 231 * S, T0 + 232 * S, failed)
        .at(T0 + 235 * S, signal("stalled"))
        .at(
            T0 + 240 * S,
            Command::Fail {
                exit_reason: ExitReason::Failed,
                reason: "watchdog: stalled after 1 prompt rewrites".to_owned(),
                cause: None,
                at_ms: T0 + 240 * S,
            },
        );

    let mut c = Run::create(0xc, T0 + 300 * S, "/w");
    c.at(T0 + 300 * S, Command::Start);
    let waiting = c.open_step(T0 + 300 * S + 500);
    c.at(
        T0 + 310 * S,
        Command::RecordWait(AgentWaiting {
            step_id: Some(waiting),
            until_ms: T0 + 400 * S,
            reason: "usage limit".to_owned(),
            paid: Default::default(),
            account: None,
            window: None,
            pool_wait: None,
        }),
    )
    .at(
        T0 + 330 * S,
        Command::Cancel {
            reason: None,
            at_ms: T0 + 330 * S,
        },
    );

    let mut f = Run::create(0xf, T0 + 500 * S, "/w");
    f.at(T0 + 500 * S, Command::Start).at(
        T0 + 510 * S,
        Command::RecordWait(AgentWaiting {
            step_id: None,
            until_ms: T0 + 600 * S,
            reason: "usage limit".to_owned(),
            paid: Default::default(),
            account: None,
            window: None,
            pool_wait: None,
        }),
    );

    let mut d = Run::create(0xd, T0 - 1_000 * S, "/w");
    d.at(T0 - 999 * S, Command::Start)
        .step(
            Phase::Implementation,
            T0 - 999 * S,
            T0 - 989 * S,
            cost(0.25, (1, 1)),
        )
        .at(T0 - 989 * S, complete(1));

    let mut e = Run::create(0xe, T0 + 50 * S, "/other");
    e.at(T0 + 50 * S, Command::Start)
        .step(
            Phase::Implementation,
            T0 + 50 * S,
            T0 + 80 * S,
            cost(1.0, (3, 3)),
        )
        .at(T0 + 80 * S, complete(3));

    vec![a, b, c, f, d, e]
}

/// Every record of the fixture in `seq`-like order: by time, runs interleaved.
fn log(runs: &[Run]) -> Vec<EventRecord> {
    let mut records: Vec<EventRecord> =
        runs.iter().flat_map(|run| run.records().to_vec()).collect();
    records.sort_by_key(|record| (record.ts_ms, record.run_id, record.version));
    records
}

#[test]
fn figures_of_a_handful_of_runs_equal_the_hand_computed_ones() {
    let runs = fixture();
    let scope = Scope {
        since_ms: Some(T0),
        workspace_root: Some("/w".to_owned()),
    };
    let stats = StatsFold::fold(scope, &log(&runs), T0 + 550 * S);
    let expected = serde_json::json!({
        "since_ms": T0,
        "workspace_root": "/w",
        "runs": {
            "total": 4, "completed": 1, "failed": 1, "canceled": 1, "active": 1,
            "by_exit_reason": {"canceled": 1, "complete_plan": 1, "failed": 1},
        },
        "iterations_to_completion": {"count": 1, "mean": 2.0, "median": 2.0, "min": 2, "max": 2},
        "tasks_done": 2,
        "active_ms": 243_000,
        "cost_usd": 0.875,
        "time_per_task_ms": 121_500,
        "cost_per_task_usd": 0.4375,
        "verification": {"passed": 2, "failed": 1, "pass_rate": 0.6667},
        "watchdog": {"signals": {"no_progress": 1, "stalled": 2}, "rewrites": 1, "gave_up": 1},
        "usage_limits": {"waits": 2, "waited_ms": 60_000},
        "agent_retries": 1,
    });
    assert_eq!(serde_json::to_value(&stats).unwrap(), expected);

    // Everything: D and E come in; three completions at iterations 1, 2 and 3.
    let all = StatsFold::fold(Scope::default(), &log(&runs), T0 + 550 * S);
    assert_eq!((all.runs.total, all.runs.completed), (6, 3));
    let spread = all.iterations_to_completion.expect("completions");
    assert_eq!(
        (spread.mean, spread.median, spread.min, spread.max),
        (2.0, 2.0, 1, 3)
    );
    assert_eq!(all.tasks_done, 6);
    assert_eq!(all.active_ms, 243_000 + 10_000 + 30_000);
    assert_eq!(all.cost_usd, 2.125);

    // Later, F's wait is over at 600 s even though nothing was recorded since.
    let later = StatsFold::fold(Scope::default(), &log(&runs), T0 + 900 * S);
    assert_eq!(later.usage_limits.waited_ms, 20_000 + 90_000);
}

#[test]
fn runs_by_day_count_each_run_on_its_utc_creation_day_under_its_status_now() {
    // T0 is 2026-09-21T14:13:20Z: the day starts 51,200 s before it and ends 35,200 s after.
    let day = T0 - 51_200 * S;
    let fail = |at: i64| Command::Fail {
        exit_reason: ExitReason::Failed,
        reason: "verification failed".to_owned(),
        cause: None,
        at_ms: at,
    };
    let cancel = |at: i64| Command::Cancel {
        reason: None,
        at_ms: at,
    };
    let mut runs = Vec::new();
    // 2026-09-21: one completed (the next day), one created in its last millisecond, pending.
    let mut g = Run::create(0x1, T0, "/w");
    g.at(T0 + S, Command::Start)
        .at(T0 + 36_000 * S, complete(1));
    runs.push(g);
    runs.push(Run::create(0x2, day + 86_400 * S - 1, "/w"));
    // 2026-09-22, from its first millisecond: one failed, one canceled, one running.
    let mut h = Run::create(0x3, day + 86_400 * S, "/w");
    h.at(day + 86_401 * S, Command::Start)
        .at(day + 86_500 * S, fail(day + 86_500 * S));
    runs.push(h);
    let mut i = Run::create(0x4, day + 90_000 * S, "/w");
    i.at(day + 90_001 * S, cancel(day + 90_001 * S));
    runs.push(i);
    let mut j = Run::create(0x5, day + 172_799 * S, "/w");
    j.at(day + 172_799 * S, Command::Start);
    runs.push(j);
    // Nothing on 2026-09-23; 2026-09-24: one completed.
    let mut k = Run::create(0x6, day + 3 * 86_400 * S + 5 * S, "/w");
    k.at(day + 3 * 86_400 * S + 6 * S, Command::Start)
        .at(day + 3 * 86_400 * S + 7 * S, complete(1));
    runs.push(k);

    let stats = StatsFold::fold(Scope::default(), &log(&runs), day + 4 * 86_400 * S);
    let by_day = serde_json::to_value(&stats.runs_by_day).unwrap();
    let expected = serde_json::json!([
        {"day": "2026-09-21", "day_ms": 1_789_948_800_000_i64,
         "total": 2, "completed": 1, "failed": 0, "canceled": 0, "active": 1},
        {"day": "2026-09-22", "day_ms": 1_790_035_200_000_i64,
         "total": 3, "completed": 0, "failed": 1, "canceled": 1, "active": 1},
        {"day": "2026-09-24", "day_ms": 1_790_208_000_000_i64,
         "total": 1, "completed": 1, "failed": 0, "canceled": 0, "active": 0},
    ]);
    assert_eq!(by_day, expected);
    // The series is served beside the figures, not inside their JSON.
    assert!(
        serde_json::to_value(&stats)
            .unwrap()
            .get("runs_by_day")
            .is_none()
    );

    // A scope narrows the series as it narrows the totals.
    let since = Scope {
        since_ms: Some(day + 86_400 * S),
        workspace_root: None,
    };
    let later = StatsFold::fold(since, &log(&runs), day + 4 * 86_400 * S);
    let days: Vec<(&str, u64)> = later
        .runs_by_day
        .iter()
        .map(|d| (d.day.as_str(), d.total))
        .collect();
    assert_eq!(days, [("2026-09-22", 3), ("2026-09-24", 1)]);
}

#[test]
fn an_empty_scope_has_no_rates() {
    let stats = StatsFold::fold(Scope::default(), &[], T0);
    assert_eq!(stats.runs.total, 0);
    assert_eq!(stats.iterations_to_completion, None);
    assert_eq!(stats.time_per_task_ms, None);
    assert_eq!(stats.cost_per_task_usd, None);
    assert_eq!(stats.verification.pass_rate, None);
}

/// `records` of the generated run as another run's, its seqs moved past `after`.
fn as_other_run(records: &[EventRecord]) -> Vec<EventRecord> {
    records
        .iter()
        .map(|record| EventRecord {
            run_id: generate::other_run_id(),
            ..record.clone()
        })
        .collect()
}

fn config() -> ProptestConfig {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default()
    } else {
        ProptestConfig::with_cases(48)
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn figures_do_not_depend_on_how_runs_interleave(
        first in generate::history(),
        second in generate::history(),
        picks in proptest::collection::vec(any::<bool>(), 0..80),
        now in 0i64..200_000,
    ) {
        let a = first.records.clone();
        let b = as_other_run(&second.records);
        let now = T0 + now;
        let one_after_other: Vec<&EventRecord> = a.iter().chain(&b).collect();
        let other_first: Vec<&EventRecord> = b.iter().chain(&a).collect();
        // Interleaved as `picks` says, each run's own order kept.
        let (mut i, mut j) = (0, 0);
        let mut mixed: Vec<&EventRecord> = Vec::new();
        for pick in picks.iter().copied().chain(std::iter::repeat(true)) {
            match (pick && i < a.len(), j < b.len()) {
                (true, _) => { mixed.push(&a[i]); i += 1; }
                (false, true) => { mixed.push(&b[j]); j += 1; }
                (false, false) if i < a.len() => { mixed.push(&a[i]); i += 1; }
                (false, false) => break,
            }
        }
        let fold = |records: Vec<&EventRecord>| {
            StatsFold::fold(Scope::default(), records, now)
        };
        let expected: Stats = fold(one_after_other);
        prop_assert_eq!(&fold(other_first), &expected);
        prop_assert_eq!(&fold(mixed), &expected);
    }

    #[test]
    fn each_run_counts_once_under_the_status_it_ended_in(driver in generate::history()) {
        let stats = StatsFold::fold(Scope::default(), &driver.records, driver.now);
        let runs = &stats.runs;
        prop_assert_eq!(runs.completed + runs.failed + runs.canceled + runs.active, runs.total);
        let (total, completed, failed, canceled) = match driver.state.status() {
            None => (0, 0, 0, 0),
            Some(RunStatus::Completed) => (1, 1, 0, 0),
            Some(RunStatus::Failed) => (1, 0, 1, 0),
            Some(RunStatus::Canceled) => (1, 0, 0, 1),
            Some(_) => (1, 0, 0, 0),
        };
        prop_assert_eq!((runs.total, runs.completed, runs.failed, runs.canceled),
            (total, completed, failed, canceled));
        let ended: u64 = runs.by_exit_reason.values().sum();
        prop_assert_eq!(ended, completed + failed + canceled);
        if let Some(rate) = stats.verification.pass_rate {
            prop_assert!((0.0..=1.0).contains(&rate));
        }
    }
}
