//! Whole experiments played through [`loop_core::experiment::next`] as the runtime drives
//! them: a simulated repository whose commits have true metrics, an agent that makes the
//! changes a script says (better, worse, neutral, none, breaking the checks, rejected by the
//! reviewer), measurements with the tests' noise, and crashes that leave a step open — each
//! followed by recovery, as a restarted runtime does. Every command goes through `decide` and
//! `apply` (the generator's driver), so the log is one the store would accept.

use std::collections::{BTreeMap, HashMap};

use loop_core::config::{ExperimentConfig, RunConfig};
use loop_core::event::{
    Decision, Event, ExitReason, ExperimentBaseline, ExperimentMeasured, Phase, Reason,
    RunCompleted, RunCreated, StepFinished, StepStarted, StepStatus,
};
use loop_core::experiment::prompt::{ExperimentInputs, experiment_prompt};
use loop_core::experiment::{Experiment, Next, drift, next, samples};
use loop_core::progress::LoopProgress;
use loop_core::{Command, RunStatus};
use proptest::prelude::*;

use super::sim::{Noise, Rng, measure};
use crate::generate::{self, Driver, finished_payload};

/// What the agent does in an iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// A commit whose true metric is this much better than the best's (0.1: 10%).
    Better(f64),
    /// A commit this much worse.
    Worse(f64),
    /// A commit that changes nothing measurable.
    Neutral,
    /// No commit at all.
    Nothing,
    /// A commit the project's checks refuse.
    BreaksChecks,
    /// A commit the reviewer asks changes of.
    Rejected,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0.05f64..0.3).prop_map(Change::Better),
        2 => (0.05f64..0.3).prop_map(Change::Worse),
        2 => Just(Change::Neutral),
        1 => Just(Change::Nothing),
        1 => Just(Change::BreaksChecks),
        1 => Just(Change::Rejected),
    ]
}

/// A simulated experiment: the log, the repository, the agent's script.
pub struct World {
    pub driver: Driver,
    pub config: RunConfig,
    settings: ExperimentConfig,
    /// Each commit's true metric.
    truth: HashMap<String, f64>,
    /// The run branch's head.
    pub head: String,
    commits: u32,
    /// What the agent does in iteration i (cycling).
    script: Vec<Change>,
    /// Each commit's change, for the checks.
    pub made: HashMap<String, Change>,
    rng: Rng,
    /// The chance that a step is cut by a crash.
    crash_rate: f64,
    pub crashes: u32,
    /// The prompt of each iteration's first attempt.
    pub prompts: BTreeMap<u32, String>,
}

impl World {
    pub fn new(config: &[(&str, &str)], script: Vec<Change>, seed: u64, crash_rate: f64) -> World {
        let mut frozen: BTreeMap<String, String> = [
            ("mode", "experiment"),
            ("measure_cmd", "./bench"),
            ("reviewer", "true"),
            ("verify_cmds", "make check\n"),
        ]
        .into_iter()
        .chain(config.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        frozen
            .entry("iterations".to_owned())
            .or_insert("12".to_owned());
        let config = RunConfig::from_frozen(&frozen);
        let settings = config.experiment.clone().expect("an experiment");
        let mut driver = Driver::new(generate::run_id());
        let created = RunCreated {
            name: "faster".into(),
            name_source: Default::default(),
            workspace_root: "/work/bench".into(),
            spec_path: "specs/faster.md".into(),
            plan_path: String::new(),
            config: frozen,
            prompt_template: None,
            tasks_done: None,
            tasks_total: None,
        };
        driver.submit(Command::Create(created)).expect("created");
        driver.submit(Command::Start).expect("started");
        let base = "c0".to_owned();
        World {
            driver,
            config,
            settings,
            truth: HashMap::from([(base.clone(), 100.0)]),
            head: base,
            commits: 0,
            script,
            made: HashMap::new(),
            rng: Rng::new(seed),
            crash_rate,
            crashes: 0,
            prompts: BTreeMap::new(),
        }
    }

    fn submit(&mut self, command: Command) {
        self.driver.now += 1_000;
        if let Err(error) = self.driver.submit(command.clone()) {
            panic!("{command:?} refused: {error}");
        }
    }

    /// Starts a step; `false` when a crash cuts it (the step is then recovered as INTERRUPTED).
    fn start(&mut self, phase: Phase, iteration: u32, attempt: u32) -> Option<loop_core::StepId> {
        let step_id = self.driver.fresh_step();
        self.submit(Command::StartStep(StepStarted {
            step_id,
            phase,
            iteration,
            attempt,
            prompt_path: None,
            session_id: None,
            resumed: false,
            account: None,
        }));
        if self.rng.uniform() < self.crash_rate {
            self.crash();
            return None;
        }
        Some(step_id)
    }

    fn crash(&mut self) {
        self.crashes += 1;
        let at_ms = self.driver.now + 500;
        self.submit(Command::Recover { at_ms });
    }

    fn finish(&mut self, step_id: loop_core::StepId, phase: Phase, ok: bool, head: bool) {
        let status = if ok {
            StepStatus::Succeeded
        } else {
            StepStatus::Failed
        };
        let finished = StepFinished {
            head_commit: head.then(|| self.head.clone()),
            cost_usd: (phase == Phase::Implementation).then_some(1.0),
            message: (!ok).then(|| format!("{} failed", phase.as_str())),
            ..finished_payload(step_id, phase, status)
        };
        self.submit(Command::FinishStep(finished));
    }

    fn measure_pair(&mut self, candidate: &str, best: &str) -> (Vec<f64>, Vec<f64>) {
        let (c, b) = (self.truth[candidate], self.truth[best]);
        let pairs = self.settings.repeats;
        measure(&mut self.rng, Noise::TESTS, c, b, pairs)
    }

    /// Plays until the experiment ends; the exit reason it ended with.
    pub fn play(&mut self) -> ExitReason {
        for _ in 0..2_000 {
            let progress = LoopProgress::fold(&self.driver.records);
            let experiment = Experiment::fold(&self.driver.records);
            match next(&progress, &experiment, &self.config, &self.settings) {
                Next::MeasureBaseline { iteration, attempt } => {
                    let Some(step) = self.start(Phase::Baseline, iteration, attempt) else {
                        continue;
                    };
                    let base = "c0".to_owned();
                    let (values, _) = self.measure_pair(&base, &base);
                    let drift = experiment
                        .baseline
                        .as_ref()
                        .and_then(|first| drift(&first.values, &values, 0.95));
                    self.submit(Command::RecordBaseline(ExperimentBaseline {
                        step_id: step,
                        iteration,
                        metric: "seconds".into(),
                        baseline: samples(&base, values),
                        drift,
                    }));
                    self.finish(step, Phase::Baseline, true, false);
                }
                Next::Implement { iteration, attempt } => {
                    if attempt == 1 {
                        // What the runtime does before a new iteration: the branch to the best.
                        let best = experiment.best.as_ref().expect("measured").commit.clone();
                        self.head = best;
                        let prompt = experiment_prompt(&ExperimentInputs {
                            spec_path: "specs/faster.md",
                            template: None,
                            context_files: &[],
                            settings: &self.settings,
                            experiment: &experiment,
                            iteration,
                        });
                        self.prompts.insert(iteration, prompt);
                    }
                    let Some(step) = self.start(Phase::Implementation, iteration, attempt) else {
                        continue;
                    };
                    let change = self.script[(iteration as usize - 1) % self.script.len()];
                    if change != Change::Nothing {
                        self.commits += 1;
                        let commit = format!("c{}", self.commits);
                        let best = self.truth[&self.head];
                        let truth = match change {
                            Change::Better(by) => best * (1.0 - by),
                            Change::Worse(by) => best * (1.0 + by),
                            _ => best,
                        };
                        self.truth.insert(commit.clone(), truth);
                        self.made.insert(commit.clone(), change);
                        self.head = commit;
                    }
                    self.finish(step, Phase::Implementation, true, true);
                }
                Next::Review { iteration } => {
                    let attempt = progress.review_attempts + 1;
                    let Some(step) = self.start(Phase::Review, iteration, attempt) else {
                        continue;
                    };
                    let ok = self.made.get(&self.head) != Some(&Change::Rejected);
                    self.finish(step, Phase::Review, ok, false);
                }
                Next::Verify { iteration } => {
                    let attempt = progress.verification_attempts + 1;
                    let Some(step) = self.start(Phase::Verification, iteration, attempt) else {
                        continue;
                    };
                    let ok = self.made.get(&self.head) != Some(&Change::BreaksChecks);
                    self.finish(step, Phase::Verification, ok, true);
                }
                Next::Measure {
                    iteration,
                    attempt,
                    candidate,
                    best,
                } => {
                    assert_eq!(candidate, self.head, "the candidate is the branch's head");
                    let Some(step) = self.start(Phase::Measurement, iteration, attempt) else {
                        continue;
                    };
                    let (c, b) = self.measure_pair(&candidate, &best);
                    self.submit(Command::RecordMeasurement(ExperimentMeasured {
                        step_id: step,
                        iteration,
                        metric: "seconds".into(),
                        candidate: samples(&candidate, c),
                        best: samples(&best, b),
                    }));
                    // A crash between the figures and the step's end: they are kept.
                    if self.rng.uniform() < self.crash_rate {
                        self.crash();
                        continue;
                    }
                    self.finish(step, Phase::Measurement, true, false);
                }
                Next::Decide(verdict) => {
                    let idea = verdict.commit.as_ref().map(|c| format!("idea of {c}"));
                    let decided = verdict.decided(self.driver.run_id, idea);
                    self.submit(Command::DecideExperiment(decided));
                    // A crash before the branch moved back: the next iteration moves it.
                    if verdict.decision == Decision::Discarded
                        && self.rng.uniform() >= self.crash_rate
                    {
                        self.head = verdict.best_commit.clone();
                    }
                }
                Next::Finish {
                    iteration,
                    exit_reason,
                    ..
                } => {
                    self.head = experiment.best.as_ref().expect("measured").commit.clone();
                    self.submit(Command::Complete(RunCompleted {
                        exit_reason,
                        completed_iteration: iteration,
                    }));
                    return exit_reason;
                }
                Next::Fail { reason, .. } => panic!("the experiment failed: {reason}"),
            }
        }
        panic!("the experiment did not end");
    }
}

/// The decisions of a log, in order.
pub fn decisions(world: &World) -> Vec<loop_core::event::ExperimentDecided> {
    world
        .driver
        .records
        .iter()
        .filter_map(|record| match &record.event {
            Event::ExperimentDecided(decided) => Some(decided.clone()),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the agent does and wherever crashes cut the steps: each iteration is decided
    /// once; nothing unchecked, unreviewed or uncommitted is measured; nothing worse is kept;
    /// the run ends COMPLETED with the best kept commit as its head; each prompt lists every
    /// decision before it.
    #[test]
    fn experiments_decide_each_iteration_once_and_end_at_their_best(
        script in proptest::collection::vec(change(), 1..8),
        seed in any::<u64>(),
        crash_rate in prop_oneof![Just(0.0), 0.0f64..0.3],
        patience in prop_oneof![Just("0"), Just("3")],
    ) {
        let mut world = World::new(&[("patience", patience)], script, seed, crash_rate);
        let exit = world.play();
        prop_assert!(world.driver.refused.is_empty(), "{:?}", world.driver.refused);
        prop_assert_eq!(world.driver.state.status(), Some(RunStatus::Completed));

        let decided = decisions(&world);
        let iterations: Vec<u32> = decided.iter().map(|d| d.iteration).collect();
        let expected: Vec<u32> = (1..=decided.len() as u32).collect();
        prop_assert_eq!(&iterations, &expected, "one decision per iteration, in order");

        let mut best = "c0".to_owned();
        for d in &decided {
            let made = d.commit.as_ref().and_then(|c| world.made.get(c)).copied();
            match made {
                None => prop_assert_eq!(d.reason, Reason::NoChange),
                Some(Change::BreaksChecks) => prop_assert_eq!(d.reason, Reason::VerificationFailed),
                Some(Change::Rejected) => prop_assert_eq!(d.reason, Reason::ReviewRejected),
                Some(Change::Worse(_)) => prop_assert_eq!(d.decision, Decision::Discarded),
                Some(_) => prop_assert!(d.metric.is_some(), "measured: {:?}", d),
            }
            prop_assert_eq!(&d.best_commit, &best);
            if d.decision == Decision::Kept {
                best = d.commit.clone().expect("a kept candidate");
            } else if d.commit.is_some() {
                prop_assert!(d.kept_ref.is_some());
            }
        }
        prop_assert_eq!(&world.head, &best, "the branch ends at the best");

        for (iteration, prompt) in &world.prompts {
            for d in decided.iter().filter(|d| d.iteration < *iteration) {
                let line = format!("- iteration {}: ", d.iteration);
                prop_assert!(prompt.contains(&line), "iteration {}'s prompt lacks {:?}", iteration, line);
            }
        }
        let since_keep = decided.iter().rev().take_while(|d| d.decision == Decision::Discarded).count();
        match exit {
            ExitReason::PatienceExhausted => prop_assert_eq!(since_keep, 3),
            ExitReason::IterationsExhausted => prop_assert!(patience == "0" || since_keep < 3),
            other => prop_assert!(false, "ended by {:?}", other),
        }
    }
}

#[test]
fn better_worse_and_neutral_changes_in_a_known_order() {
    let script = vec![
        Change::Better(0.2),
        Change::Worse(0.1),
        Change::Neutral,
        Change::Better(0.1),
        Change::Nothing,
        Change::BreaksChecks,
    ];
    let mut world = World::new(&[("iterations", "6")], script, 7, 0.0);
    assert_eq!(world.play(), ExitReason::IterationsExhausted);
    let outcome: Vec<(Decision, Reason)> = decisions(&world)
        .iter()
        .map(|d| (d.decision, d.reason))
        .collect();
    use Decision::{Discarded, Kept};
    assert_eq!(
        outcome,
        [
            (Kept, Reason::Improved),
            (Discarded, Reason::Worse),
            (Discarded, Reason::WithinNoise),
            (Kept, Reason::Improved),
            (Discarded, Reason::NoChange),
            (Discarded, Reason::VerificationFailed),
        ]
    );
    // c1 (20% better), then c4 (10% better than c1): the branch ends there.
    assert_eq!(world.head, "c4");
    let table =
        loop_core::projection::ExperimentTable::fold(&world.driver.records).expect("an experiment");
    let brief = table.brief();
    assert_eq!((brief.kept, brief.discarded, brief.iterations), (2, 4, 6));
    assert_eq!(brief.best_commit.as_deref(), Some("c4"));
    let change = brief.change.expect("a change");
    assert!(
        (change + 0.28).abs() < 0.01,
        "0.8 × 0.9 = 0.72 of the start: {change}"
    );
    assert_eq!(table.rows.len(), 7, "the baseline and six iterations");
    assert!(
        table.rows[2]
            .kept_ref
            .as_deref()
            .is_some_and(|r| r.ends_with("/2"))
    );
}

#[test]
fn an_experiment_stops_at_its_target_and_measures_the_baseline_again_on_schedule() {
    let script = vec![Change::Better(0.2)];
    let mut world = World::new(
        &[("target", "55"), ("baseline_every", "2")],
        script,
        11,
        0.0,
    );
    // 100 → 80 → 64 → 51.2: the third keep reaches 55.
    assert_eq!(world.play(), ExitReason::TargetReached);
    assert_eq!(decisions(&world).len(), 3);
    let baselines: Vec<u32> = world
        .driver
        .records
        .iter()
        .filter_map(|r| match &r.event {
            Event::ExperimentBaseline(b) => Some(b.iteration),
            _ => None,
        })
        .collect();
    assert_eq!(baselines, [0, 2], "at the start, then after iteration 2");
}

#[test]
fn the_budget_ends_an_experiment_completed() {
    // Each implementation call costs $1.
    let mut world = World::new(
        &[("max_cost_usd", "2.5")],
        vec![Change::Better(0.1)],
        3,
        0.0,
    );
    assert_eq!(world.play(), ExitReason::BudgetExhausted);
    let reasons: Vec<Reason> = decisions(&world).iter().map(|d| d.reason).collect();
    // The third call passed the budget: its change is not reviewed, so not kept.
    assert_eq!(
        reasons,
        [Reason::Improved, Reason::Improved, Reason::BudgetSpent]
    );
    assert_eq!(world.driver.state.status(), Some(RunStatus::Completed));
}
