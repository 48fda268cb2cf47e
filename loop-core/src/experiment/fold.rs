//! [`Experiment`]: where an experiment stands, as the fold of its run's events — the starting
//! point, the best so far, every decided iteration, and the iteration under way.

use crate::event::{
    Decision, Event, EventRecord, ExperimentBaseline, ExperimentDecided, ExperimentMeasured, Phase,
    Samples, StepStatus,
};

/// The best commit so far and what it measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Best {
    pub commit: String,
    /// Its median in its latest measurement.
    pub metric: f64,
    /// The spread of those samples (median absolute deviation).
    pub spread: f64,
    /// The iteration that made it the best (0: the starting commit).
    pub iteration: u32,
}

/// An experiment's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Experiment {
    /// The starting commit's first measurement: where the experiment began.
    pub baseline: Option<Samples>,
    /// Its later measurements, each with the drift from the first.
    pub rechecks: Vec<ExperimentBaseline>,
    pub best: Option<Best>,
    /// Every decision, in order.
    pub trials: Vec<ExperimentDecided>,
    /// The measurement of the iteration under way, once taken and not yet decided on.
    pub measured: Option<ExperimentMeasured>,
    /// The last iteration decided on (0: none yet).
    pub decided_through: u32,
    /// Decisions since the last kept change.
    pub since_keep: u32,
    /// Why the iteration under way could not be measured: (iteration, what the step said).
    pub measure_failed: Option<(u32, String)>,
    /// Why the starting commit could not be measured, when it could not.
    pub baseline_failed: Option<String>,
    /// The iteration of the latest baseline measurement that ended (with figures or failed);
    /// one a crash or a pause interrupted is taken again.
    pub baseline_tried_at: Option<u32>,
    /// Measurement steps started in an iteration for a phase: (iteration, phase, count).
    attempts: Option<(u32, Phase, u32)>,
    /// The measurement step open now: its phase and iteration.
    open: Option<(Phase, u32)>,
}

impl Experiment {
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> Experiment {
        let mut experiment = Experiment::default();
        for record in records {
            experiment.apply(record);
        }
        experiment
    }

    pub fn apply(&mut self, record: &EventRecord) {
        match &record.event {
            Event::StepStarted(step)
                if matches!(step.phase, Phase::Measurement | Phase::Baseline) =>
            {
                self.open = Some((step.phase, step.iteration));
                let count = self.attempts(step.phase, step.iteration);
                self.attempts = Some((step.iteration, step.phase, count + 1));
            }
            Event::StepFinished(step) => {
                let open = self.open.take();
                if let Some((Phase::Baseline, iteration)) = open
                    && matches!(step.status, StepStatus::Succeeded | StepStatus::Failed)
                {
                    self.baseline_tried_at = Some(iteration);
                }
                if step.status != StepStatus::Failed {
                    return;
                }
                let why = step
                    .message
                    .clone()
                    .unwrap_or_else(|| "the measurement failed".to_owned());
                match open {
                    Some((Phase::Measurement, iteration)) => {
                        self.measure_failed = Some((iteration, why));
                    }
                    Some((Phase::Baseline, _)) if self.baseline.is_none() => {
                        self.baseline_failed = Some(why);
                    }
                    _ => {}
                }
            }
            Event::RunRetried(_) => {
                // Measure again what a failed run could not measure.
                self.measure_failed = None;
                self.baseline_failed = None;
            }
            Event::ExperimentBaseline(measured) => {
                self.baseline_tried_at = Some(measured.iteration);
                self.record_baseline(measured);
            }
            Event::ExperimentMeasured(measured) => self.measured = Some(measured.clone()),
            Event::ExperimentDecided(decided) => self.decide(decided),
            _ => {}
        }
    }

    fn record_baseline(&mut self, measured: &ExperimentBaseline) {
        match &self.baseline {
            None => {
                self.baseline = Some(measured.baseline.clone());
                self.best = Some(Best {
                    commit: measured.baseline.commit.clone(),
                    metric: measured.baseline.median,
                    spread: measured.baseline.spread,
                    iteration: 0,
                });
            }
            Some(_) => self.rechecks.push(measured.clone()),
        }
    }

    fn decide(&mut self, decided: &ExperimentDecided) {
        let measured = self
            .measured
            .take()
            .filter(|measured| measured.iteration == decided.iteration);
        self.measure_failed = None;
        self.decided_through = decided.iteration;
        match (decided.decision, &decided.commit, decided.metric) {
            (Decision::Kept, Some(commit), Some(metric)) => {
                self.since_keep = 0;
                self.best = Some(Best {
                    commit: commit.clone(),
                    metric,
                    spread: measured.map_or(0.0, |m| m.candidate.spread),
                    iteration: decided.iteration,
                });
            }
            _ => {
                self.since_keep += 1;
                // The best was measured again beside the candidate: its latest figure.
                if let (Some(best), Some(metric)) = (self.best.as_mut(), decided.best_metric) {
                    best.metric = metric;
                    if let Some(measured) = measured {
                        best.spread = measured.best.spread;
                    }
                }
            }
        }
        self.trials.push(decided.clone());
    }

    /// Measurement steps of `phase` started so far in `iteration`.
    pub fn attempts(&self, phase: Phase, iteration: u32) -> u32 {
        match self.attempts {
            Some((at, of, count)) if (at, of) == (iteration, phase) => count,
            _ => 0,
        }
    }

    /// The measurement taken for `iteration`, if it is the one under way.
    pub fn measurement_of(&self, iteration: u32) -> Option<&ExperimentMeasured> {
        self.measured
            .as_ref()
            .filter(|measured| measured.iteration == iteration)
    }

    /// Why `iteration`'s measurement failed, if it did.
    pub fn measure_failure_of(&self, iteration: u32) -> Option<&str> {
        match &self.measure_failed {
            Some((at, why)) if *at == iteration => Some(why),
            _ => None,
        }
    }

    /// Kept changes so far.
    pub fn kept(&self) -> usize {
        self.trials
            .iter()
            .filter(|trial| trial.decision == Decision::Kept)
            .count()
    }
}
