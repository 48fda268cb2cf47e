//! The payloads of an experiment's events (`specs/experiment.md`): a trial's measurement, a
//! measurement of the starting commit, and the decision on a candidate. Each carries the
//! figures it was decided on, so the log still says why a change was kept after the rule that
//! kept it has changed.

use serde::{Deserialize, Serialize};

use crate::ids::StepId;

/// Samples of one commit, in the order they were taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Samples {
    pub commit: String,
    pub values: Vec<f64>,
    pub median: f64,
    /// The median absolute deviation from the median, in the metric's unit.
    pub spread: f64,
}

/// The candidate and the best measured alternately (`EXPERIMENT_MEASURED`): the i-th values of
/// both sides form a pair, taken one after the other, the candidate first in even pairs (0, 2,
/// …) and the best first in odd ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentMeasured {
    pub step_id: StepId,
    pub iteration: u32,
    /// The metric's name (`metric`, or `metric` when the line is a bare number).
    pub metric: String,
    pub candidate: Samples,
    pub best: Samples,
}

/// How far the starting commit's metric moved since it was first measured: the machine, not
/// the code (the commit is the same).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Drift {
    /// Relative change of the mean, against the first measurement's median.
    pub effect: f64,
    /// Where it lies at the run's confidence (two-sided).
    pub interval: [f64; 2],
    /// Whether the interval leaves out 0: the machine measures differently now.
    pub beyond_noise: bool,
}

/// The starting commit measured alone (`EXPERIMENT_BASELINE`): first at iteration 0, the
/// starting point and best of the experiment; then again every `baseline_every` iterations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentBaseline {
    pub step_id: StepId,
    pub iteration: u32,
    pub metric: String,
    pub baseline: Samples,
    /// Against the first measurement; absent on the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

/// Whether a candidate stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Decision {
    /// The run branch stays at the candidate: it is the new best.
    Kept,
    /// The run branch returns to the best; the candidate is kept under its ref.
    Discarded,
}

impl Decision {
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Kept => "kept",
            Decision::Discarded => "discarded",
        }
    }
}

/// Why: what the measurement showed, or why there was none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Reason {
    /// Better than the best by more than `min_effect`, at `confidence`.
    Improved,
    /// Better, at `confidence`, but not surely by `min_effect`.
    BelowMinEffect,
    /// Neither surely better nor surely worse.
    WithinNoise,
    /// Worse than the best, at `confidence`.
    Worse,
    /// The agent committed nothing new.
    NoChange,
    /// The reviewer asked for changes.
    ReviewRejected,
    /// The project's checks failed: a change is measured only once they pass.
    VerificationFailed,
    /// `measure_cmd` failed or printed no number for one of the commits.
    MeasurementFailed,
    /// The budget ran out before the change was reviewed.
    BudgetSpent,
}

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Improved => "improved",
            Reason::BelowMinEffect => "below_min_effect",
            Reason::WithinNoise => "within_noise",
            Reason::Worse => "worse",
            Reason::NoChange => "no_change",
            Reason::ReviewRejected => "review_rejected",
            Reason::VerificationFailed => "verification_failed",
            Reason::MeasurementFailed => "measurement_failed",
            Reason::BudgetSpent => "budget_spent",
        }
    }

    /// Words for the agent's history and the tables.
    pub const fn words(self) -> &'static str {
        match self {
            Reason::Improved => "better beyond the noise",
            Reason::BelowMinEffect => "better, but not surely by min_effect",
            Reason::WithinNoise => "within the noise",
            Reason::Worse => "worse",
            Reason::NoChange => "no new commit",
            Reason::ReviewRejected => "the reviewer asked for changes",
            Reason::VerificationFailed => "the checks failed",
            Reason::MeasurementFailed => "the measurement failed",
            Reason::BudgetSpent => "the budget ran out before review",
        }
    }
}

/// The decision on an iteration's candidate (`EXPERIMENT_DECIDED`), recorded before the run
/// branch is moved: on a discard the runtime then keeps the candidate under `kept_ref` and
/// returns the branch to `best_commit`, which it does again after a crash until the branch
/// stands there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentDecided {
    pub iteration: u32,
    pub decision: Decision,
    pub reason: Reason,
    /// The candidate; absent when the agent committed nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The best when the candidate was decided on (the branch's head after a discard).
    pub best_commit: String,
    /// What was tried: the candidate commit's subject line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idea: Option<String>,
    /// The candidate's median, when it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<f64>,
    /// The best's median in the same measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_metric: Option<f64>,
    /// Relative change of the metric against the best (−0.05: 5% lower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<f64>,
    /// Where the effect lies at `confidence`: each side is a one-sided bound at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// Where a discarded candidate stays reachable: `refs/loop/experiments/<run>/<iteration>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_ref: Option<String>,
}
