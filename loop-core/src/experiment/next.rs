//! What an experiment does next: the pure choice the driver asks for in `mode=experiment`, as
//! [`crate::progress::next`] is for a plan.
//!
//! An iteration is implementation, review and verification as in any run, then the candidate
//! measured against the best, then the decision. Before the first, the starting commit is
//! measured; between iterations it is measured again every `baseline_every`, and the
//! experiment stops when its best reaches `target`, after `patience` iterations without a keep,
//! or when `iterations` or `max_cost_usd` are spent — COMPLETED in every case, with the best
//! commit as the run branch's head.

use crate::config::RunConfig;
use crate::config::experiment::ExperimentConfig;
use crate::event::{Decision, ExitReason, ExperimentDecided, FailureCause, Phase, Reason};
use crate::experiment::decision::{Comparison, Rule, compare};
use crate::experiment::fold::Experiment;
use crate::ids::RunId;
use crate::progress::{LoopProgress, Stage};

/// The decision to record for an iteration.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub iteration: u32,
    pub decision: Decision,
    pub reason: Reason,
    /// The candidate, when the agent committed one.
    pub commit: Option<String>,
    pub best_commit: String,
    /// The measurement's figures, when it was measured.
    pub comparison: Option<Comparison>,
}

impl Verdict {
    /// The event that records it; `idea` is the candidate's subject line, which the runtime
    /// reads from the repository.
    pub fn decided(&self, run_id: RunId, idea: Option<String>) -> ExperimentDecided {
        let comparison = self.comparison.as_ref();
        let discarded_commit = self.decision == Decision::Discarded && self.commit.is_some();
        ExperimentDecided {
            iteration: self.iteration,
            decision: self.decision,
            reason: self.reason,
            commit: self.commit.clone(),
            best_commit: self.best_commit.clone(),
            idea,
            metric: comparison.map(|c| c.candidate_median),
            best_metric: comparison.map(|c| c.best_median),
            effect: comparison.map(|c| c.effect),
            interval: comparison.and_then(|c| c.interval),
            kept_ref: discarded_commit.then(|| kept_ref(run_id, self.iteration)),
        }
    }
}

/// Where a discarded candidate stays reachable.
pub fn kept_ref(run_id: RunId, iteration: u32) -> String {
    format!("refs/loop/experiments/{run_id}/{iteration}")
}

/// What comes next in an experiment.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Measure the starting commit: at iteration 0 the experiment's origin, later its drift.
    MeasureBaseline {
        iteration: u32,
        attempt: u32,
    },
    /// Before a new iteration's first attempt, the runtime returns the run branch to the best
    /// commit if it stands elsewhere (a discard whose move a crash interrupted).
    Implement {
        iteration: u32,
        attempt: u32,
    },
    Review {
        iteration: u32,
    },
    Verify {
        iteration: u32,
    },
    /// Measure `candidate` against `best`, alternately.
    Measure {
        iteration: u32,
        attempt: u32,
        candidate: String,
        best: String,
    },
    /// Record the verdict; on a discard, then keep the candidate under its ref and return the
    /// run branch to the best.
    Decide(Verdict),
    /// The experiment is over: the run branch to the best commit, the merge when configured,
    /// then COMPLETED with this exit reason.
    Finish {
        iteration: u32,
        exit_reason: ExitReason,
        reason: String,
    },
    Fail {
        exit_reason: ExitReason,
        reason: String,
        cause: FailureCause,
    },
}

/// The next thing to do in a RUNNING experiment with no open step.
pub fn next(
    progress: &LoopProgress,
    experiment: &Experiment,
    config: &RunConfig,
    settings: &ExperimentConfig,
) -> Next {
    let rule = Rule::of(settings);
    let (Some(_), Some(best)) = (&experiment.baseline, &experiment.best) else {
        return match &experiment.baseline_failed {
            Some(why) => Next::Fail {
                exit_reason: ExitReason::Failed,
                reason: format!("the starting commit could not be measured: {why}"),
                cause: FailureCause::Setup,
            },
            None => Next::MeasureBaseline {
                iteration: 0,
                attempt: experiment.attempts(Phase::Baseline, 0) + 1,
            },
        };
    };
    let budget_spent = config
        .max_cost_usd
        .is_some_and(|max| progress.cost_usd >= max);
    let iteration = progress.iteration;
    let decided = experiment.decided_through;

    if iteration <= decided {
        // Between iterations.
        if let Some((exit_reason, reason)) = stop(progress, experiment, config, settings, &rule) {
            return Next::Finish {
                iteration: decided,
                exit_reason,
                reason,
            };
        }
        if let Some(every) = settings.baseline_every
            && decided > 0
            && decided % every == 0
            && experiment.baseline_tried_at.is_none_or(|at| at < decided)
        {
            return Next::MeasureBaseline {
                iteration: decided,
                attempt: experiment.attempts(Phase::Baseline, decided) + 1,
            };
        }
        return Next::Implement {
            iteration: iteration.max(decided) + 1,
            attempt: 1,
        };
    }

    let candidate = progress.last_head.clone();
    let verdict = |decision: Decision, reason: Reason, comparison: Option<Comparison>| {
        Next::Decide(Verdict {
            iteration,
            decision,
            reason,
            commit: candidate.clone(),
            best_commit: best.commit.clone(),
            comparison,
        })
    };
    let discard = |reason: Reason| verdict(Decision::Discarded, reason, None);
    let measure_or_decide = || {
        if let Some(measured) = experiment.measurement_of(iteration) {
            let comparison = compare(&measured.candidate.values, &measured.best.values, &rule);
            return verdict(comparison.decision, comparison.reason, Some(comparison));
        }
        if experiment.measure_failure_of(iteration).is_some() {
            return discard(Reason::MeasurementFailed);
        }
        Next::Measure {
            iteration,
            attempt: experiment.attempts(Phase::Measurement, iteration) + 1,
            candidate: candidate.clone().unwrap_or_default(),
            best: best.commit.clone(),
        }
    };
    let verify_or_measure = || {
        if config.verifies() {
            Next::Verify { iteration }
        } else {
            measure_or_decide()
        }
    };

    match progress.stage {
        Stage::Implement if budget_spent => Next::Finish {
            iteration: decided,
            exit_reason: ExitReason::BudgetExhausted,
            reason: budget_words(progress, config),
        },
        Stage::Implement => Next::Implement {
            iteration,
            attempt: progress.implementation_attempts + 1,
        },
        _ if candidate.is_none() || candidate.as_deref() == Some(best.commit.as_str()) => {
            // Nothing new to keep, nor to keep a ref to.
            Next::Decide(Verdict {
                iteration,
                decision: Decision::Discarded,
                reason: Reason::NoChange,
                commit: None,
                best_commit: best.commit.clone(),
                comparison: None,
            })
        }
        Stage::Implemented if config.reviewer && budget_spent => discard(Reason::BudgetSpent),
        Stage::Implemented if config.reviewer => Next::Review { iteration },
        Stage::Implemented => verify_or_measure(),
        Stage::Reviewed if progress.review_outstanding => discard(Reason::ReviewRejected),
        Stage::Reviewed => verify_or_measure(),
        Stage::Verified if !progress.verified => discard(Reason::VerificationFailed),
        Stage::Verified => measure_or_decide(),
    }
}

/// Why the experiment stops now, between iterations, if it does.
fn stop(
    progress: &LoopProgress,
    experiment: &Experiment,
    config: &RunConfig,
    settings: &ExperimentConfig,
    rule: &Rule,
) -> Option<(ExitReason, String)> {
    let best = experiment.best.as_ref()?;
    if let Some(target) = settings.target
        && rule.reached(best.metric, target)
    {
        return Some((
            ExitReason::TargetReached,
            format!(
                "the best {} {} reached the target {target}",
                settings.metric_name(),
                best.metric
            ),
        ));
    }
    if let Some(patience) = settings.patience
        && experiment.since_keep >= patience
    {
        return Some((
            ExitReason::PatienceExhausted,
            format!(
                "{} iterations in a row kept nothing (patience {patience})",
                experiment.since_keep
            ),
        ));
    }
    if progress.iterations_run >= config.iterations {
        return Some((
            ExitReason::IterationsExhausted,
            format!("{} iterations ran", progress.iterations_run),
        ));
    }
    if config
        .max_cost_usd
        .is_some_and(|max| progress.cost_usd >= max)
    {
        return Some((ExitReason::BudgetExhausted, budget_words(progress, config)));
    }
    None
}

fn budget_words(progress: &LoopProgress, config: &RunConfig) -> String {
    format!(
        "agent cost ${:.2} reached max_cost_usd ${:.2}",
        progress.cost_usd,
        config.max_cost_usd.unwrap_or(0.0)
    )
}
