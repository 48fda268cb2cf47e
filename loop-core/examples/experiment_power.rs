//! Prints how often experiment mode's decision keeps a change, over seeded simulations with
//! known true effects (the figures in `specs/experiment.md` and the closing notes):
//!
//! ```text
//! cargo run --release -q -p loop-core --example experiment_power [TRIALS]
//! ```
//!
//! For each noise and number of samples: the share kept of changes that are truly no better
//! (0%), exactly `min_effect` better (1%, the hardest case for false keeps), and twice
//! `min_effect` better (2%, the power the issue asks for), at `confidence` 0.95.

#[path = "../tests/it/experiment/sim.rs"]
#[allow(dead_code)]
mod sim;

use loop_core::config::Goal;
use loop_core::experiment::Rule;

use sim::{Noise, keep_rate};

fn main() {
    let trials: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let rule = Rule {
        goal: Goal::Minimize,
        min_effect: 0.01,
        confidence: 0.95,
    };
    let noises = [
        (
            "tests' noise: 0.4%, drift 0.1%/sample, 1% outliers",
            Noise::TESTS,
        ),
        (
            "quiet: 0.2%, no drift, no outliers",
            Noise {
                sigma: 0.002,
                drift_step: 0.0,
                outlier_rate: 0.0,
            },
        ),
        (
            "noisy: 1%, drift 0.2%/sample, 2% outliers",
            Noise {
                sigma: 0.01,
                drift_step: 0.002,
                outlier_rate: 0.02,
            },
        ),
        (
            "very noisy: 2%, drift 0.5%/sample, 5% outliers",
            Noise {
                sigma: 0.02,
                drift_step: 0.005,
                outlier_rate: 0.05,
            },
        ),
    ];
    println!("{trials} simulated candidates per cell; min_effect 1%, confidence 0.95, minimize");
    println!(
        "| noise | samples each | kept at 0% | kept at 1% (false keeps ≤ 5%) | kept at 2% (power) |"
    );
    println!("|---|---|---|---|---|");
    let mut seed = 1_000;
    for (name, noise) in noises {
        for pairs in [3, 5, 10, 20] {
            let mut cell = |improvement: f64| {
                seed += 1;
                keep_rate(seed, &rule, noise, improvement, pairs, trials) * 100.0
            };
            let (none, edge, double) = (cell(0.0), cell(0.01), cell(0.02));
            println!("| {name} | {pairs} | {none:.2}% | {edge:.2}% | {double:.1}% |");
        }
    }
}
