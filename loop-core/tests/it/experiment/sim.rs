//! Seeded simulations of measurements: a known true metric per commit, and the noise a real
//! benchmark shows — a spread around the truth, a machine that drifts while it measures, and now
//! and then a sample slowed by something else on the machine. Shared by the property tests and
//! `examples/experiment_power.rs`, which prints the figures for the notes.

use loop_core::config::Goal;
use loop_core::event::Decision;
use loop_core::experiment::{Rule, compare};

/// A small, seeded generator (SplitMix64): the same seed gives the same simulation anywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// How measurements scatter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Noise {
    /// Each sample's spread around the truth, relative (0.004 = 0.4%), log-normal.
    pub sigma: f64,
    /// The machine's drift: a random walk of this relative step per sample, shared by both
    /// sides (what alternating is for).
    pub drift_step: f64,
    /// The chance that a sample is slowed by something else on the machine, by 5% to 30%.
    pub outlier_rate: f64,
}

impl Noise {
    /// The tests' noise: what a short benchmark on a busy laptop shows.
    pub const TESTS: Noise = Noise {
        sigma: 0.004,
        drift_step: 0.001,
        outlier_rate: 0.01,
    };
}

/// `pairs` pairs of samples of a candidate whose true metric is `candidate` and a best whose
/// true metric is `best`, taken alternately (candidate first in even pairs) on one machine.
pub fn measure(
    rng: &mut Rng,
    noise: Noise,
    candidate: f64,
    best: f64,
    pairs: u32,
) -> (Vec<f64>, Vec<f64>) {
    let mut machine = 1.0_f64;
    let mut sample = |rng: &mut Rng, truth: f64| {
        machine *= (noise.drift_step * rng.normal()).exp();
        let mut value = truth * machine * (noise.sigma * rng.normal()).exp();
        if rng.uniform() < noise.outlier_rate {
            value *= 1.05 + 0.25 * rng.uniform();
        }
        value
    };
    let (mut c, mut b) = (Vec::new(), Vec::new());
    for pair in 0..pairs {
        if pair % 2 == 0 {
            c.push(sample(rng, candidate));
            b.push(sample(rng, best));
        } else {
            b.push(sample(rng, best));
            c.push(sample(rng, candidate));
        }
    }
    (c, b)
}

/// The share of `trials` simulated candidates kept, whose true improvement over the best is
/// `improvement` (0.02: 2% better in the goal's direction).
pub fn keep_rate(
    seed: u64,
    rule: &Rule,
    noise: Noise,
    improvement: f64,
    pairs: u32,
    trials: u32,
) -> f64 {
    let mut rng = Rng::new(seed);
    let best = 100.0;
    let candidate = match rule.goal {
        Goal::Minimize => best * (1.0 - improvement),
        Goal::Maximize => best * (1.0 + improvement),
    };
    let kept = (0..trials)
        .filter(|_| {
            let (c, b) = measure(&mut rng, noise, candidate, best, pairs);
            compare(&c, &b, rule).decision == Decision::Kept
        })
        .count();
    kept as f64 / f64::from(trials)
}
