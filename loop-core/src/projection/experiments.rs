//! An experiment's table: `experiments.tsv`, `loopctl experiment`, `GET /runs/{id}/experiment`,
//! the dashboard's chart, and the experiment section of `summary.json` — one row per decided
//! iteration after a row 0 for the starting commit, as a fold of the run's events.

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::event::{Decision, Drift, Event, EventRecord};
use crate::experiment::Experiment;

/// The header of `experiments.tsv`.
pub const EXPERIMENTS_HEADER: &str = "iteration\tcommit\tidea\tmetric\tspread\tbest_metric\teffect\tinterval_low\tinterval_high\tkept\treason\tbest\tkept_ref";

/// One row: an iteration's candidate and what was decided (row 0: the starting commit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentRow {
    pub iteration: u32,
    /// The candidate (row 0: the starting commit); absent when the agent committed nothing.
    pub commit: Option<String>,
    /// What was tried: the candidate's subject line.
    pub idea: Option<String>,
    /// The candidate's median; absent when it was not measured.
    pub metric: Option<f64>,
    /// The spread of its samples (median absolute deviation).
    pub spread: Option<f64>,
    /// The best's median in the same measurement.
    pub best_metric: Option<f64>,
    /// Relative change of the metric against the best (−0.05: 5% lower).
    pub effect: Option<f64>,
    /// Where the effect lies at the run's confidence, each side a one-sided bound.
    pub interval: Option<[f64; 2]>,
    pub kept: bool,
    /// `baseline`, or why it was kept or discarded (`improved`, `within_noise`, …).
    pub reason: String,
    /// The best so far after this row, and its spread: the chart's line and noise band.
    pub best: Option<f64>,
    pub best_spread: Option<f64>,
    /// Where a discarded candidate stays reachable.
    pub kept_ref: Option<String>,
    pub ts_ms: i64,
}

/// A later measurement of the starting commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recheck {
    pub iteration: u32,
    pub metric: f64,
    pub spread: f64,
    pub drift: Option<Drift>,
}

/// The experiment as a table, and its figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentTable {
    /// The metric's name.
    pub metric: String,
    /// `minimize` or `maximize`.
    pub goal: String,
    pub min_effect: f64,
    pub confidence: f64,
    pub target: Option<f64>,
    pub rows: Vec<ExperimentRow>,
    pub rechecks: Vec<Recheck>,
    #[serde(skip)]
    fold: Experiment,
    /// The candidate's spread in the measurement under way: (iteration, spread).
    #[serde(skip)]
    measured_spread: Option<(u32, f64)>,
}

impl ExperimentTable {
    /// The table of a run's events; `None` unless the run is an experiment.
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> Option<ExperimentTable> {
        let mut records = records.into_iter();
        let Event::RunCreated(created) = &records.next()?.event else {
            return None;
        };
        let mut table = ExperimentTable::of(&RunConfig::from_frozen(&created.config))?;
        for record in records {
            table.apply(record);
        }
        Some(table)
    }

    /// An empty table for a run so configured; `None` unless it is an experiment.
    pub fn of(config: &RunConfig) -> Option<ExperimentTable> {
        let settings = config.experiment.as_ref()?;
        Some(ExperimentTable {
            metric: settings.metric_name().to_owned(),
            goal: settings.goal.as_str().to_owned(),
            min_effect: settings.min_effect,
            confidence: settings.confidence,
            target: settings.target,
            ..ExperimentTable::default()
        })
    }

    pub fn apply(&mut self, record: &EventRecord) {
        let first_baseline = self.fold.baseline.is_none();
        self.fold.apply(record);
        let best = self.fold.best.as_ref();
        let (best_metric, best_spread) = (best.map(|b| b.metric), best.map(|b| b.spread));
        match &record.event {
            Event::ExperimentBaseline(measured) if first_baseline => {
                self.metric.clone_from(&measured.metric);
                self.rows.push(ExperimentRow {
                    iteration: measured.iteration,
                    commit: Some(measured.baseline.commit.clone()),
                    idea: None,
                    metric: Some(measured.baseline.median),
                    spread: Some(measured.baseline.spread),
                    best_metric: None,
                    effect: None,
                    interval: None,
                    kept: true,
                    reason: "baseline".to_owned(),
                    best: best_metric,
                    best_spread,
                    kept_ref: None,
                    ts_ms: record.ts_ms,
                });
            }
            Event::ExperimentBaseline(measured) => self.rechecks.push(Recheck {
                iteration: measured.iteration,
                metric: measured.baseline.median,
                spread: measured.baseline.spread,
                drift: measured.drift.clone(),
            }),
            Event::ExperimentDecided(decided) => {
                let spread = self
                    .measured_spread
                    .take()
                    .filter(|(iteration, _)| *iteration == decided.iteration)
                    .map(|(_, spread)| spread);
                self.rows.push(ExperimentRow {
                    iteration: decided.iteration,
                    commit: decided.commit.clone(),
                    idea: decided.idea.clone(),
                    metric: decided.metric,
                    spread,
                    best_metric: decided.best_metric,
                    effect: decided.effect,
                    interval: decided.interval,
                    kept: decided.decision == Decision::Kept,
                    reason: decided.reason.as_str().to_owned(),
                    best: best_metric,
                    best_spread,
                    kept_ref: decided.kept_ref.clone(),
                    ts_ms: record.ts_ms,
                });
            }
            Event::ExperimentMeasured(measured) => {
                self.measured_spread = Some((measured.iteration, measured.candidate.spread));
            }
            _ => {}
        }
    }
}

impl ExperimentTable {
    /// `experiments.tsv`: the header and one line per row. Numbers are written as they are
    /// stored (full precision), an absent one as an empty field, `kept` as true/false. Every
    /// text field is one line without tabs: a commit or ref decoded from the log is any string.
    pub fn to_tsv(&self) -> String {
        fn number(value: Option<f64>) -> String {
            value.map(|v| v.to_string()).unwrap_or_default()
        }
        let mut text = format!("{EXPERIMENTS_HEADER}\n");
        for row in &self.rows {
            let fields = [
                row.iteration.to_string(),
                row.commit.as_deref().map(one_line).unwrap_or_default(),
                row.idea.as_deref().map(one_line).unwrap_or_default(),
                number(row.metric),
                number(row.spread),
                number(row.best_metric),
                number(row.effect),
                number(row.interval.map(|i| i[0])),
                number(row.interval.map(|i| i[1])),
                row.kept.to_string(),
                one_line(&row.reason),
                number(row.best),
                row.kept_ref.as_deref().map(one_line).unwrap_or_default(),
            ];
            text.push_str(&fields.join("\t"));
            text.push('\n');
        }
        text
    }

    /// Where the experiment stands, for `summary.json`.
    pub fn brief(&self) -> ExperimentBrief {
        let baseline = self.fold.baseline.as_ref();
        let best = self.fold.best.as_ref();
        let improvement = match (baseline, best) {
            (Some(baseline), Some(best)) if baseline.median != 0.0 => {
                Some((best.metric - baseline.median) / baseline.median.abs())
            }
            _ => None,
        };
        let decided = self.fold.trials.len();
        let kept = self.fold.kept();
        ExperimentBrief {
            metric: self.metric.clone(),
            goal: self.goal.clone(),
            baseline: baseline.map(|b| b.median),
            baseline_commit: baseline.map(|b| b.commit.clone()),
            best: best.map(|b| b.metric),
            best_commit: best.map(|b| b.commit.clone()),
            best_iteration: best.map(|b| b.iteration),
            change: improvement,
            iterations: u32::try_from(decided).unwrap_or(u32::MAX),
            kept: u32::try_from(kept).unwrap_or(u32::MAX),
            discarded: u32::try_from(decided - kept).unwrap_or(u32::MAX),
            drift: self
                .rechecks
                .last()
                .and_then(|recheck| recheck.drift.clone()),
        }
    }

    /// The experiment's state behind the table.
    pub fn experiment(&self) -> &Experiment {
        &self.fold
    }
}

/// The experiment section of `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentBrief {
    pub metric: String,
    pub goal: String,
    /// The starting commit's median, first measured.
    pub baseline: Option<f64>,
    pub baseline_commit: Option<String>,
    /// The best's median in its latest measurement.
    pub best: Option<f64>,
    pub best_commit: Option<String>,
    pub best_iteration: Option<u32>,
    /// The best against the starting point, relative (−0.2: 20% lower).
    pub change: Option<f64>,
    /// Iterations decided on, kept and discarded.
    pub iterations: u32,
    pub kept: u32,
    pub discarded: u32,
    /// The latest drift of the starting commit's measurement, if it was measured again.
    pub drift: Option<Drift>,
}

fn one_line(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}
