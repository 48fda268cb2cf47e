//! The decision on a candidate: kept only when it beats the best by more than `min_effect` at
//! `confidence`, judged by a one-sided paired t-test over the alternated pairs
//! (`specs/experiment.md`, "The statistics", says why this test and not another).

use crate::config::choice::Goal;
use crate::config::experiment::ExperimentConfig;
use crate::event::{Decision, Drift, Reason, Samples};
use crate::experiment::stats::{mad, mean_sd, median, t_quantile};

/// What a decision is made by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    pub goal: Goal,
    /// The smallest relative improvement worth keeping (0.01 = 1%).
    pub min_effect: f64,
    /// How sure a kept change must be (one-sided), below 1.
    pub confidence: f64,
}

impl Rule {
    pub fn of(config: &ExperimentConfig) -> Rule {
        Rule {
            goal: config.goal,
            min_effect: config.min_effect,
            confidence: config.confidence,
        }
    }

    /// `change` (a relative change of the metric) as an improvement: positive is better.
    fn improvement(&self, change: f64) -> f64 {
        match self.goal {
            Goal::Minimize => -change,
            Goal::Maximize => change,
        }
    }

    /// Whether `value` is at least as good as `target`.
    pub fn reached(&self, value: f64, target: f64) -> bool {
        match self.goal {
            Goal::Minimize => value <= target,
            Goal::Maximize => value >= target,
        }
    }
}

/// A candidate measured against the best.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub decision: Decision,
    pub reason: Reason,
    /// The relative change of the metric, candidate against best (−0.05: the candidate's
    /// metric is 5% lower): the geometric mean of the pairs' ratios less 1 when every sample is
    /// positive (never below −100%), else the mean of the pairs' differences over the best's
    /// median.
    pub effect: f64,
    /// Where the effect lies: each side is a one-sided bound at the rule's confidence. `None`
    /// with fewer than two pairs.
    pub interval: Option<[f64; 2]>,
    pub candidate_median: f64,
    pub best_median: f64,
}

/// `values` of `commit`, with their median and spread.
pub fn samples(commit: &str, values: Vec<f64>) -> Samples {
    Samples {
        commit: commit.to_owned(),
        median: median(&values).unwrap_or(f64::NAN),
        spread: mad(&values),
        values,
    }
}

/// The differences are relative to the best's median; a metric whose median is 0 has no
/// relative change, and is compared in its own unit.
fn scale_of(best: &[f64]) -> f64 {
    match median(best) {
        Some(m) if m != 0.0 && m.is_finite() => m.abs(),
        _ => 1.0,
    }
}

/// How the pairs' changes are read: per pair on a log scale when every sample is positive, as
/// differences otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scale {
    /// `ln(candidateᵢ / bestᵢ)`: a ratio per pair, so a change is relative to the very sample
    /// it was taken beside, the effect `exp(mean) − 1` is a geometric mean of the ratios and can
    /// never fall below −100%, and the interval is symmetric where the noise of a timing is (a
    /// slowdown by a factor and a speedup by the same factor weigh alike).
    LogRatio,
    /// `(candidateᵢ − bestᵢ) / |median(best)|`: a metric that can be 0 or negative (a count of
    /// warnings reaching 0, a score below 0) has no ratio.
    Difference(f64),
}

impl Scale {
    fn of(candidate: &[f64], best: &[f64]) -> Scale {
        let positive = |v: &f64| v.is_finite() && *v > 0.0;
        if candidate.iter().all(positive) && best.iter().all(positive) {
            Scale::LogRatio
        } else {
            Scale::Difference(scale_of(best))
        }
    }

    fn change(self, candidate: f64, best: f64) -> f64 {
        match self {
            Scale::LogRatio => (candidate / best).ln(),
            Scale::Difference(scale) => (candidate - best) / scale,
        }
    }

    /// A change on this scale as a relative change of the metric (monotone, so the order of an
    /// interval's ends is kept).
    fn relative(self, change: f64) -> f64 {
        match self {
            Scale::LogRatio => change.exp_m1(),
            Scale::Difference(_) => change,
        }
    }
}

/// Compares the candidate's samples with the best's, pair by pair (the i-th of each, taken one
/// after the other). Extra samples on one side, if any, are left out.
///
/// The paired t-test runs on the scale [`Scale`] picks; its mean and interval are then read
/// back as relative changes of the metric, and `min_effect` is compared with those, so "1%
/// better" means the same on either scale.
pub fn compare(candidate: &[f64], best: &[f64], rule: &Rule) -> Comparison {
    let pairs = candidate.len().min(best.len());
    let (candidate, best) = (&candidate[..pairs], &best[..pairs]);
    let scale = Scale::of(candidate, best);
    let changes: Vec<f64> = candidate
        .iter()
        .zip(best)
        .map(|(c, b)| scale.change(*c, *b))
        .collect();
    let candidate_median = median(candidate).unwrap_or(f64::NAN);
    let best_median = median(best).unwrap_or(f64::NAN);
    let Some((mean, sd)) = mean_sd(&changes) else {
        return Comparison {
            decision: Decision::Discarded,
            reason: Reason::WithinNoise,
            effect: scale.relative(changes.first().copied().unwrap_or(0.0)),
            interval: None,
            candidate_median,
            best_median,
        };
    };
    let df = u32::try_from(pairs - 1).unwrap_or(u32::MAX);
    let half = t_quantile(rule.confidence, df) * sd / (pairs as f64).sqrt();
    let interval = [scale.relative(mean - half), scale.relative(mean + half)];
    // The improvement's bounds: the side of the interval towards "better" is the one that
    // must clear min_effect.
    let (low, high) = {
        let (a, b) = (rule.improvement(interval[0]), rule.improvement(interval[1]));
        (a.min(b), a.max(b))
    };
    let (decision, reason) = if low > rule.min_effect {
        (Decision::Kept, Reason::Improved)
    } else if high < 0.0 {
        (Decision::Discarded, Reason::Worse)
    } else if low > 0.0 {
        (Decision::Discarded, Reason::BelowMinEffect)
    } else {
        (Decision::Discarded, Reason::WithinNoise)
    };
    Comparison {
        decision,
        reason,
        effect: scale.relative(mean),
        interval: Some(interval),
        candidate_median,
        best_median,
    }
}

/// How far the starting commit's metric moved between its first measurement and `now`
/// (Welch's unpaired t-test: the two sets were taken at different times, with no pairing;
/// degrees of freedom rounded down, which only widens the interval).
pub fn drift(first: &[f64], now: &[f64], confidence: f64) -> Option<Drift> {
    let scale = scale_of(first);
    let relative = |values: &[f64]| -> Vec<f64> { values.iter().map(|v| v / scale).collect() };
    let (first_mean, first_sd) = mean_sd(&relative(first))?;
    let (now_mean, now_sd) = mean_sd(&relative(now))?;
    let (n1, n2) = (first.len() as f64, now.len() as f64);
    let (v1, v2) = (first_sd.powi(2) / n1, now_sd.powi(2) / n2);
    let se = (v1 + v2).sqrt();
    let effect = now_mean - first_mean;
    let df = if se == 0.0 {
        n1 + n2 - 2.0
    } else {
        (v1 + v2).powi(2) / (v1.powi(2) / (n1 - 1.0) + v2.powi(2) / (n2 - 1.0))
    };
    // A whole number of degrees of freedom, at least 1; the cast saturates.
    let df = df.floor().max(1.0) as u32;
    let half = t_quantile((1.0 + confidence) / 2.0, df) * se;
    let interval = [effect - half, effect + half];
    Some(Drift {
        effect,
        interval,
        beyond_noise: interval[0] > 0.0 || interval[1] < 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(goal: Goal) -> Rule {
        Rule {
            goal,
            min_effect: 0.01,
            confidence: 0.95,
        }
    }

    #[test]
    fn a_clear_improvement_is_kept_and_a_clear_regression_is_not() {
        let best = [100.0, 101.0, 99.0, 100.5, 99.5];
        let faster = [90.0, 91.0, 89.0, 90.5, 89.5];
        let kept = compare(&faster, &best, &rule(Goal::Minimize));
        assert_eq!(
            (kept.decision, kept.reason),
            (Decision::Kept, Reason::Improved)
        );
        // Each pair is ~10% faster: a ratio of about 0.9 (pair by pair, not over a median).
        assert!((kept.effect + 0.1).abs() < 2e-4, "{kept:?}");
        assert_eq!(kept.candidate_median, 90.0);
        // The same numbers, when higher is better, are a regression.
        let worse = compare(&faster, &best, &rule(Goal::Maximize));
        assert_eq!(
            (worse.decision, worse.reason),
            (Decision::Discarded, Reason::Worse)
        );
    }

    #[test]
    fn noise_and_small_gains_are_not_kept() {
        let best = [100.0, 101.0, 99.0, 100.5, 99.5];
        let same = [100.5, 99.0, 101.0, 99.5, 100.0];
        let noise = compare(&same, &best, &rule(Goal::Minimize));
        assert_eq!(
            (noise.decision, noise.reason),
            (Decision::Discarded, Reason::WithinNoise)
        );
        // Surely faster, by 0.5%: real, and smaller than min_effect.
        let slightly: Vec<f64> = best.iter().map(|b| b * 0.995).collect();
        let small = compare(&slightly, &best, &rule(Goal::Minimize));
        assert_eq!(
            (small.decision, small.reason),
            (Decision::Discarded, Reason::BelowMinEffect)
        );
    }

    #[test]
    fn a_deterministic_metric_is_kept_on_its_difference_alone() {
        // A binary's size: no noise at all.
        let kept = compare(&[980.0; 3], &[1000.0; 3], &rule(Goal::Minimize));
        assert_eq!(kept.decision, Decision::Kept);
        let [low, high] = kept.interval.expect("three pairs");
        assert!(
            (low - high).abs() < 1e-15 && (low + 0.02).abs() < 1e-12,
            "{kept:?}"
        );
        let too_small = compare(&[995.0; 3], &[1000.0; 3], &rule(Goal::Minimize));
        assert_eq!(too_small.reason, Reason::BelowMinEffect);
    }

    #[test]
    fn a_change_many_times_faster_reads_above_minus_one_hundred_percent() {
        // The sieve of specs/experiment.md's real experiment: the best's samples scattered
        // (a busy machine), the candidate ~340 times faster. Over the best's median the pairs
        // read −110.8%; as ratios, pair by pair, the change is bounded by −100%.
        let best = [60.8, 131.0, 62.0, 70.0, 59.0];
        let sieve = [0.18, 0.19, 0.18, 0.20, 0.17];
        let kept = compare(&sieve, &best, &rule(Goal::Minimize));
        assert_eq!(kept.decision, Decision::Kept);
        let [low, high] = kept.interval.expect("five pairs");
        assert!(-1.0 < low && low <= kept.effect && kept.effect <= high && high < -0.99);
        // The same samples read the other way round: a ×300 slowdown, far above +100%.
        let slower = compare(&best, &sieve, &rule(Goal::Minimize));
        assert_eq!(slower.reason, Reason::Worse);
        assert!(slower.effect > 100.0, "{slower:?}");
    }

    #[test]
    fn a_metric_that_reaches_zero_is_compared_by_differences() {
        // A count of warnings: no ratio to 0, the pairs' differences over the best's median.
        let gone = compare(&[0.0; 3], &[4.0; 3], &rule(Goal::Minimize));
        assert_eq!(gone.decision, Decision::Kept);
        assert_eq!(gone.effect, -1.0);
        let scores = compare(
            &[-1.0, -1.5, -0.5],
            &[-2.0, -2.5, -1.5],
            &rule(Goal::Maximize),
        );
        assert_eq!((scores.decision, scores.effect), (Decision::Kept, 0.5));
    }

    #[test]
    fn one_pair_decides_nothing() {
        let one = compare(&[1.0], &[2.0], &rule(Goal::Minimize));
        assert_eq!((one.decision, one.interval), (Decision::Discarded, None));
    }

    #[test]
    fn drift_is_shown_when_the_same_commit_measures_differently() {
        let first = [100.0, 101.0, 99.0, 100.5, 99.5];
        let slower: Vec<f64> = first.iter().map(|v| v * 1.1).collect();
        let moved = drift(&first, &slower, 0.95).expect("enough samples");
        assert!(moved.beyond_noise && (moved.effect - 0.1).abs() < 1e-9);
        let same = drift(&first, &[100.2, 99.4, 100.9, 99.8, 100.1], 0.95).expect("enough");
        assert!(!same.beyond_noise, "{same:?}");
        assert_eq!(drift(&first, &[1.0], 0.95), None);
    }
}
