//! The experiments among the runs of [`super::Stats`]: how many iterations they decided and
//! kept, and for each its metric from the start to the best (`loopctl stats`).

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::event::{Event, EventRecord, RunCreated};
use crate::experiment::Experiment;
use crate::ids::RunId;

/// The experiment runs in scope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentStats {
    /// Iterations decided on, kept and discarded, summed over the runs.
    pub iterations: u64,
    pub kept: u64,
    pub discarded: u64,
    /// Each experiment run, oldest first.
    pub runs: Vec<ExperimentFigure>,
}

impl ExperimentStats {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// One experiment run's metric: where it started and where its best stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentFigure {
    pub run_id: RunId,
    pub metric: String,
    /// `minimize` or `maximize`.
    pub goal: String,
    /// The starting commit's median, when it was measured.
    pub baseline: Option<f64>,
    /// The best's median.
    pub best: Option<f64>,
    /// The best against the start, relative (−0.2: 20% lower).
    pub change: Option<f64>,
    pub iterations: u32,
    pub kept: u32,
}

/// One run's experiment as the stats fold sees it.
#[derive(Clone, Debug)]
pub(super) struct RunExperiment {
    metric: String,
    goal: String,
    fold: Experiment,
}

impl RunExperiment {
    /// `Some` when the run is an experiment.
    pub(super) fn of(created: &RunCreated) -> Option<RunExperiment> {
        let config = RunConfig::from_frozen(&created.config);
        let settings = config.experiment.as_ref()?;
        Some(RunExperiment {
            metric: settings.metric_name().to_owned(),
            goal: settings.goal.as_str().to_owned(),
            fold: Experiment::default(),
        })
    }

    pub(super) fn apply(&mut self, record: &EventRecord) {
        if matches!(
            record.event,
            Event::StepStarted(_)
                | Event::StepFinished(_)
                | Event::RunRetried(_)
                | Event::ExperimentBaseline(_)
                | Event::ExperimentMeasured(_)
                | Event::ExperimentDecided(_)
        ) {
            self.fold.apply(record);
        }
    }

    pub(super) fn add_to(&self, run_id: RunId, stats: &mut ExperimentStats) {
        let decided = self.fold.trials.len();
        let kept = self.fold.kept();
        stats.iterations += decided as u64;
        stats.kept += kept as u64;
        stats.discarded += (decided - kept) as u64;
        let baseline = self.fold.baseline.as_ref().map(|b| b.median);
        let best = self.fold.best.as_ref().map(|b| b.metric);
        let change = match (baseline, best) {
            (Some(start), Some(best)) if start != 0.0 => Some((best - start) / start.abs()),
            _ => None,
        };
        stats.runs.push(ExperimentFigure {
            run_id,
            metric: self.metric.clone(),
            goal: self.goal.clone(),
            baseline,
            best,
            change,
            iterations: u32::try_from(decided).unwrap_or(u32::MAX),
            kept: u32::try_from(kept).unwrap_or(u32::MAX),
        });
    }
}
