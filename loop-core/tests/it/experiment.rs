//! Experiment mode's pure parts: the decision over many seeded simulations with known true
//! effects (false keeps at most 1 − confidence, real improvements of twice `min_effect` kept at
//! least 80% of the time), its invariants under any samples, and whole experiments played
//! through `experiment::next` the way the runtime drives them, crashes included.

mod play;
mod sim;

use loop_core::config::Goal;
use loop_core::event::{Decision, Reason};
use loop_core::experiment::{Rule, compare};
use proptest::prelude::*;

use self::sim::{Noise, keep_rate};

fn rule(goal: Goal, min_effect: f64, confidence: f64) -> Rule {
    Rule {
        goal,
        min_effect,
        confidence,
    }
}

/// The Monte Carlo error allowed above a rate `p` over `trials`: 2.6 standard errors (a true
/// rate at `p` exceeds it once in two hundred seeds).
fn slack(p: f64, trials: u32) -> f64 {
    2.6 * (p * (1.0 - p) / f64::from(trials)).sqrt()
}

/// Changes that are not really better — no better at all, or better by exactly `min_effect`, the
/// hardest case (anything worse is kept less often still) — are kept at most 1 − confidence of the time, whatever the
/// noise, the number of samples, the goal and the confidence asked for.
#[test]
fn changes_not_really_better_are_kept_at_most_one_minus_confidence_of_the_time() {
    const TRIALS: u32 = 3_000;
    let noises = [
        Noise::TESTS,
        Noise {
            sigma: 0.02,
            drift_step: 0.005,
            outlier_rate: 0.05,
        },
        Noise {
            sigma: 0.001,
            drift_step: 0.0,
            outlier_rate: 0.0,
        },
    ];
    let mut seed = 1;
    for goal in [Goal::Minimize, Goal::Maximize] {
        for confidence in [0.9, 0.95, 0.99] {
            for pairs in [3, 5, 10] {
                for noise in noises {
                    let rule = rule(goal, 0.01, confidence);
                    for improvement in [0.01, 0.0] {
                        seed += 1;
                        let kept = keep_rate(seed, &rule, noise, improvement, pairs, TRIALS);
                        let allowed = 1.0 - confidence;
                        assert!(
                            kept <= allowed + slack(allowed, TRIALS),
                            "{goal:?} at {confidence}, {pairs} pairs, {noise:?}: a true \
                             improvement of {improvement} was kept {kept} of the time"
                        );
                    }
                }
            }
        }
    }
}

/// Under the tests' noise and the defaults (5 samples each, 1%, 0.95), a change that is truly
/// 2% better is kept at least 80% of the time.
#[test]
fn real_improvements_of_twice_min_effect_are_kept_at_least_four_times_in_five() {
    const TRIALS: u32 = 4_000;
    for (seed, goal) in [(101, Goal::Minimize), (202, Goal::Maximize)] {
        let rule = rule(goal, 0.01, 0.95);
        let kept = keep_rate(seed, &rule, Noise::TESTS, 0.02, 5, TRIALS);
        assert!(
            kept >= 0.8 + slack(0.8, TRIALS),
            "{goal:?}: a true 2% improvement was kept {kept} of the time"
        );
    }
}

fn samples() -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(1.0f64..1000.0, 2..12)
}

fn any_rule() -> impl Strategy<Value = Rule> {
    (
        prop_oneof![Just(Goal::Minimize), Just(Goal::Maximize)],
        0.0f64..0.2,
        0.5f64..0.999,
    )
        .prop_map(|(goal, min_effect, confidence)| rule(goal, min_effect, confidence))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A candidate identical to the best is never kept, and the interval holds the effect.
    #[test]
    fn the_best_against_itself_is_never_kept(best in samples(), rule in any_rule()) {
        let same = compare(&best, &best, &rule);
        prop_assert_eq!(same.decision, Decision::Discarded);
        prop_assert_eq!(same.effect, 0.0);
    }

    /// Whatever the samples, the effect lies in its interval, a kept change improved beyond
    /// `min_effect` at the interval's near side, and the same samples read the other way round
    /// (the other goal) are never kept too.
    #[test]
    fn decisions_agree_with_their_interval(
        candidate in samples(),
        best in samples(),
        rule in any_rule(),
    ) {
        let comparison = compare(&candidate, &best, &rule);
        let [low, high] = comparison.interval.expect("two pairs at least");
        prop_assert!(low <= comparison.effect && comparison.effect <= high);
        let flipped = Rule {
            goal: match rule.goal {
                Goal::Minimize => Goal::Maximize,
                Goal::Maximize => Goal::Minimize,
            },
            ..rule
        };
        let other = compare(&candidate, &best, &flipped);
        if comparison.decision == Decision::Kept {
            let near = match rule.goal {
                Goal::Minimize => -high,
                Goal::Maximize => low,
            };
            prop_assert!(near > rule.min_effect);
            prop_assert_eq!(other.reason, Reason::Worse);
        }
    }

    /// The unit does not matter: the same samples in milliseconds or in seconds decide alike.
    #[test]
    fn decisions_do_not_depend_on_the_unit(
        candidate in samples(),
        best in samples(),
        rule in any_rule(),
        scale in prop_oneof![Just(0.001), Just(1000.0), Just(3.7)],
    ) {
        let scaled = |values: &[f64]| values.iter().map(|v| v * scale).collect::<Vec<f64>>();
        let original = compare(&candidate, &best, &rule);
        let rescaled = compare(&scaled(&candidate), &scaled(&best), &rule);
        // Unless the decision stood on a knife's edge that rounding can tip.
        let [low, high] = original.interval.expect("two pairs");
        let edges = [low, high, -low, -high];
        if edges.iter().all(|edge| (edge - rule.min_effect).abs() > 1e-9 && edge.abs() > 1e-9) {
            prop_assert_eq!(original.decision, rescaled.decision);
            prop_assert_eq!(original.reason, rescaled.reason);
        }
    }

    /// Making the candidate better by the same factor on every sample never turns a keep into
    /// a discard (pairs are compared as ratios, so "better" is a factor, not an amount).
    #[test]
    fn a_better_candidate_is_kept_whenever_a_worse_one_was(
        candidate in samples(),
        best in samples(),
        rule in any_rule(),
        gain in 0.0f64..0.5,
    ) {
        let improved: Vec<f64> = candidate
            .iter()
            .map(|v| match rule.goal {
                Goal::Minimize => v * (1.0 - gain),
                Goal::Maximize => v * (1.0 + gain),
            })
            .collect();
        if compare(&candidate, &best, &rule).decision == Decision::Kept {
            prop_assert_eq!(compare(&improved, &best, &rule).decision, Decision::Kept);
        }
    }

    /// The effect is bounded: a positive metric can fall by at most 100% (reached only by
    /// rounding, at ratios under 1e-16), however far apart the two sides' samples lie (over the
    /// best's median, a 340× speed-up once read −110.8%).
    #[test]
    fn a_positive_metric_never_reads_below_minus_one_hundred_percent(
        candidate in proptest::collection::vec(1e-6f64..1e6, 2..12),
        best in proptest::collection::vec(1e-6f64..1e6, 2..12),
        rule in any_rule(),
    ) {
        let comparison = compare(&candidate, &best, &rule);
        let [low, high] = comparison.interval.expect("two pairs at least");
        prop_assert!(-1.0 <= low && low <= comparison.effect && comparison.effect <= high);
    }
}
